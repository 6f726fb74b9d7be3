// fan-in — producers in all three runtimes write into one channel at the same time; one consumer
// drains it. Run three times: the channel owned by C++, then Rust, then .NET.
//
// Protocol, for each owner runtime O:
//   1. O creates a channel (capacity --capacity, default 8): one sender port, one receiver port.
//      SenderPort.Clone() makes two more sender ports of the same channel, so there are three.
//   2. The consumer starts on the receiver port: O's own consumer agent when O is C++ or Rust; when
//      O is .NET, C# code of this scenario reading the port through ToReader() (it shows how to
//      consume a fan-in in C#, and tallies each stream separately).
//   3. Three producer agents start at once, one per runtime, each with one sender port:
//      C++ sends stream 1, Rust stream 2, .NET stream 3; N messages each (--messages, default 2000),
//      ids MakeId(stream, seq) for seq 0..N-1, --payload bytes (default 32) of the producer pattern.
//      Each producer awaits every send, so its own stream arrives in order (bridge.h rule 6); the
//      three streams interleave however the runtimes are scheduled.
//   4. Each producer releases its sender port when done; the release of the last of the three
//      closes the channel, so the consumer drains what is queued and ends.
// Invariants, per owner: every producer ends OK having sent N; the consumer ends OK having received
// 3N with 0 order errors — the consumer checks, per stream, that seq starts at 0 and each message
// follows the previous one, and that the payload holds the pattern (with the total count and the
// checksum this means every stream arrived complete, in order, without duplicates); the consumer's
// checksum equals the sum of the producers' checksums; the C# consumer also counts N per stream.
// How interleaved the streams were (stream switches) is printed, not checked: it depends on timing.
// Every wait is bounded (the C# consumer: 30 s without a message; an agent: 30 s + 50 µs a message)
// and a wait that runs out is reported as a failure, never a hang.
using System.Threading.Channels;
using Poc.Bridge;

namespace Poc.Scenarios;

internal sealed class FanInScenario : Scenario
{
    private static readonly TimeSpan Stall = TimeSpan.FromSeconds(30);

    public override string Name => "fan-in";
    public override string Runtimes => "C# C++ Rust";
    public override string Description =>
        "producers in C++, Rust and .NET write into one channel (sender clones), once per channel owner; per-stream order and totals";

    public override async Task RunAsync(ScenarioContext context)
    {
        long perProducer = context.Options.Messages ?? 2000;
        int payloadLength = context.Options.Payload ?? 32;
        int capacity = context.Options.Capacity ?? 8;

        await using var cpp = new CppRuntime(threads: 1);
        await using var rust = new RustRuntime(threads: 1);
        await using var dotnet = new DotNetRuntime();
        IBridgeRuntime[] producers = [cpp, rust, dotnet]; // producer i sends stream i + 1

        context.Line($"    3 producers x {perProducer} messages, {payloadLength}-byte payload, channel capacity {capacity}");
        foreach (IBridgeRuntime owner in producers)
            await RunOnceAsync(context, owner, producers, (ulong)perProducer, payloadLength, capacity);
        context.Work = $"{3 * 3 * perProducer} msgs";
    }

    private static async Task RunOnceAsync(ScenarioContext context, IBridgeRuntime owner, IBridgeRuntime[] producers,
        ulong perProducer, int payloadLength, int capacity)
    {
        bool csharpConsumer = owner is DotNetRuntime;
        context.Line($"  channel owned by {owner.Name}; consumer: {(csharpConsumer ? "C# code (ToReader)" : $"the {owner.Name} consumer agent")}");

        // 1. One channel, three sender ports. `using`: a port not handed over (because something threw)
        //    is released, so the channel still closes and nothing waits forever.
        (SenderPort sender, ReceiverPort receiver) = owner.CreateChannel(capacity);
        using (receiver)
        using (sender)
        using (SenderPort second = sender.Clone())
        using (SenderPort third = sender.Clone())
        {
            SenderPort[] senders = [sender, second, third];

            // 2. The consumer.
            var csharpTally = new StreamTally(producers.Length);
            Task<AgentReport> consumer = csharpConsumer
                ? ConsumeInCSharpAsync(receiver.ToReader(), csharpTally)
                : owner.RunConsumerAsync(receiver);

            // 3. The producers, all at once.
            var producing = new Task<AgentReport>[producers.Length];
            for (int i = 0; i < producers.Length; i++)
                producing[i] = producers[i].RunProducerAsync(senders[i], stream: (ulong)i + 1, perProducer, payloadLength);

            // 4. Wait for everyone (the last release closed the channel). The bound grows with the
            //    work: 30 s plus 50 µs a message, far above what a healthy run takes.
            TimeSpan bound = Stall + TimeSpan.FromMicroseconds(50.0 * 3 * perProducer);
            ulong producedCount = 0, producedChecksum = 0;
            for (int i = 0; i < producers.Length; i++)
            {
                string who = $"producer {producers[i].Name}";
                AgentReport? r = await WithinAsync(producing[i], bound, context, who);
                if (r is not { } p) continue;
                producedCount += p.Messages;
                producedChecksum = unchecked(producedChecksum + p.Checksum);
                context.Line($"    {who,-14} stream {i + 1}   {Show(p.Status)} {p.Messages,9} msgs   checksum {p.Checksum:x16}");
                context.Check(p.Status == Status.Ok, $"{owner.Name} channel: {who} ended OK (got {p.Status})");
                context.Check(p.Messages == perProducer, $"{owner.Name} channel: {who} sent {perProducer} (got {p.Messages})");
            }

            string consumerName = $"consumer {(csharpConsumer ? "C#" : owner.Name)}";
            AgentReport? report = await WithinAsync(consumer, bound, context, consumerName);
            if (report is not { } c) return;
            context.Line($"    {consumerName,-14}            {Show(c.Status)} {c.Messages,9} msgs   checksum {c.Checksum:x16} {(c.Checksum == producedChecksum ? "= Σ producers" : "!= Σ producers")}   order errors {c.OrderErrors}");
            if (csharpConsumer)
            {
                context.Line($"    per stream: {string.Join(", ", csharpTally.PerStream.Select((n, i) => $"{i + 1}: {n}"))}; {csharpTally.Switches} stream switches; {csharpTally.Unknown} of unknown streams");
                for (int i = 0; i < producers.Length; i++)
                    context.Check(csharpTally.PerStream[i] == (long)perProducer,
                        $"{owner.Name} channel: the C# consumer got {perProducer} of stream {i + 1} (got {csharpTally.PerStream[i]})");
                context.Check(csharpTally.Unknown == 0, $"{owner.Name} channel: no message of an unknown stream ({csharpTally.Unknown})");
            }
            context.Check(c.Status == Status.Ok, $"{owner.Name} channel: {consumerName} ended OK (got {c.Status})");
            context.Check(c.Messages == producedCount && producedCount == 3 * perProducer,
                $"{owner.Name} channel: {consumerName} received all {3 * perProducer} (got {c.Messages}, producers sent {producedCount})");
            context.Check(c.OrderErrors == 0, $"{owner.Name} channel: every stream in order with its payload intact ({c.OrderErrors} order errors)");
            context.Check(c.Checksum == producedChecksum,
                $"{owner.Name} channel: consumer checksum {c.Checksum:x16} = Σ producer checksums {producedChecksum:x16}");
        }
    }

    /// <summary>The C# consumer: reads until the channel is closed and drained, checks each
    /// stream's order and payload like the consumer agents do, and counts per stream.</summary>
    private static async Task<AgentReport> ConsumeInCSharpAsync(ChannelReader<Message> reader, StreamTally tally)
    {
        using var stall = new CancellationTokenSource();
        try
        {
            while (true)
            {
                if ((tally.Count & 255) == 0) stall.CancelAfter(Stall); // re-armed as messages arrive
                Message m;
                try
                {
                    m = await reader.ReadAsync(stall.Token);
                }
                catch (ChannelClosedException)
                {
                    return new AgentReport(Status.Ok, (ulong)tally.Count, tally.Checksum, tally.OrderErrors);
                }
                tally.Add(m);
            }
        }
        catch (OperationCanceledException)
        {
            return new AgentReport(Status.Cancelled, (ulong)tally.Count, tally.Checksum, tally.OrderErrors);
        }
        catch (InteropException e)
        {
            return new AgentReport(e.Status, (ulong)tally.Count, tally.Checksum, tally.OrderErrors);
        }
        finally
        {
            ((IDisposable)reader).Dispose();
        }
    }

    private sealed class StreamTally(int streams)
    {
        private readonly ulong[] _nextSeq = new ulong[streams];
        private ulong _lastStream;

        public long[] PerStream { get; } = new long[streams];
        public long Count { get; private set; }
        public ulong Checksum { get; private set; }
        public ulong OrderErrors { get; private set; }
        public long Switches { get; private set; }
        public long Unknown { get; private set; }

        public void Add(Message m)
        {
            Count++;
            Checksum = unchecked(Checksum + m.Checksum());
            ulong stream = m.Id >> MessageChecksum.StreamShift;
            ulong seq = m.Id & MessageChecksum.SeqMask;
            if (Count > 1 && stream != _lastStream) Switches++;
            _lastStream = stream;
            if (stream < 1 || stream > (ulong)PerStream.Length)
            {
                Unknown++;
                OrderErrors++;
                return;
            }
            int s = (int)stream - 1;
            PerStream[s]++;
            if (seq != _nextSeq[s] || !MessageChecksum.CheckPattern(m.Id, m.Payload.Span)) OrderErrors++;
            _nextSeq[s] = seq + 1;
        }
    }

    private static string Show(Status s) => s.ToString().ToUpperInvariant().PadRight(9);

    private static async Task<AgentReport?> WithinAsync(Task<AgentReport> agent, TimeSpan bound, ScenarioContext context, string who)
    {
        try
        {
            return await agent.WaitAsync(bound);
        }
        catch (TimeoutException)
        {
            context.Fail($"{who} did not end within {bound.TotalSeconds:F0} s");
            return null;
        }
    }
}
