// backpressure — a fast producer and a slow consumer on a small channel: the producer is paced by
// the consumer, nothing is dropped, and memory stays flat. Three runs, so that a C++, a Rust and a
// .NET producer each wait on another runtime's channel:
//
//     producer C++  → channel owned by Rust → slow C# consumer
//     producer Rust → channel owned by .NET → slow C# consumer
//     producer .NET → channel owned by C++  → slow C# consumer
//
// Protocol, per run:
//   1. The owner creates a channel of capacity --capacity (default 1). The C# consumer imports the
//      receiver (ToReader) and reads in a loop; it is slow on purpose: after every `stride` reads
//      it awaits Task.Delay(1 ms) (stride = N / 100, at least 1: about 100 pauses whatever N is;
//      a 1 ms delay lasts 1–4 ms on Linux, depending on the load).
//   2. The producer side sends N messages (--messages, default 100) of --payload bytes (default
//      4096) as fast as the runtime can: 10 producer agents one after the other (round r sends
//      stream r + 1, about N / 10 messages, on a Clone() of the sender port; the host starts round
//      r + 1 as soon as round r's report arrives). Splitting the producer into rounds is what lets
//      the C# side see how far it got: when a round's report arrives, every message of the rounds
//      so far has been sent (a send completes once the message is in the channel).
//   3. At that moment the host samples in-flight = sent − received, where received counts the
//      messages the consumer's ReadAsync has returned. What is counted as sent but not received is
//      in the channel (at most `capacity` — that is the backpressure promise) or is the one message
//      the consumer's pending read has taken but not handed to the loop yet (at most 1: the
//      consumer has one read at a time). The sample is taken after the report arrived, so
//      received can only have grown meanwhile: the sample never overstates. Hence the invariant
//      peak ≤ capacity + 1. Were the producer not paced (a try_send that drops, an unbounded
//      queue), a round of N / 10 messages would end in microseconds while the consumer reads
//      `stride` messages per pause, and the sample would be close to N / 10.
//   4. After the last round the host releases its own sender port, the last one: the channel
//      closes, the consumer drains it and ends.
// The consumer checks the exact order (stream 1 seq 0.., then stream 2 seq 0.., ...), every
// payload's pattern, and sums checksums.
// Memory is measured at the start and the end (after a forced full collection): RSS
// (Environment.WorkingSet), the memory the GC keeps committed (GCMemoryInfo.TotalCommittedBytes),
// the live managed bytes (GC.GetTotalMemory(true)), and the process's peak RSS. RSS alone is not a
// fair gauge here: the GC sizes its allocation budget from the CPU cache (on a machine with a
// large L3 it keeps ~80 MiB committed once enough payloads went through) and does not give it back
// after a collection. So the memory invariants are "RSS outside the GC's committed memory" (native
// buffers of C++ and Rust, thread stacks, the runtimes) and "live managed memory".
// Invariants, per run: every round's producer ends OK having sent its share; the consumer ends OK
// (channel closed) having received N in order with the payloads intact, and its checksum equals the
// sum of the producers'; peak in-flight ≤ capacity + 1. Once, at the end: RSS outside the GC heap
// and live managed memory each grew by less than 64 MiB — loose bounds (JIT, thread stacks and
// allocator arenas move them too): this scenario would show a producer that buffers N × payload
// bytes; it is not a memory test. Every wait is bounded (30 s without a message; a producer round:
// 30 s + 1 ms a message); running out is a failure, not a hang.
using System.Diagnostics;
using System.Threading.Channels;
using Poc.Bridge;

namespace Poc.Scenarios;

internal sealed class BackpressureScenario : Scenario
{
    private static readonly TimeSpan Stall = TimeSpan.FromSeconds(30);
    private const int Rounds = 10;
    private const long GrowthLimit = 64L << 20;

    public override string Name => "backpressure";
    public override string Runtimes => "C# C++ Rust";
    public override string Description =>
        "fast C++/Rust/.NET producers, a slow C# consumer, capacity 1: the producer is paced, nothing dropped, memory flat";

    public override async Task RunAsync(ScenarioContext context)
    {
        long messages = context.Options.Messages ?? 100;
        int payloadLength = context.Options.Payload ?? 4096;
        int capacity = context.Options.Capacity ?? 1;

        await using var cpp = new CppRuntime(threads: 1);
        await using var rust = new RustRuntime(threads: 1);
        await using var dotnet = new DotNetRuntime();
        (IBridgeRuntime Producer, IBridgeRuntime Owner)[] runs = [(cpp, rust), (rust, dotnet), (dotnet, cpp)];

        Memory start = Memory.Measure();
        context.Line($"    {messages} messages per run in {Math.Min(Rounds, messages)} producer rounds, {payloadLength}-byte payload, capacity {capacity}; " +
                     $"the consumer pauses 1 ms every {Stride(messages)} reads");
        context.Line($"    memory at start: {start}");
        foreach (var (producer, owner) in runs)
            await RunOnceAsync(context, producer, owner, messages, payloadLength, capacity);

        Memory end = Memory.Measure();
        long peak = Process.GetCurrentProcess().PeakWorkingSet64;
        long nativeGrowth = (end.Rss - start.Rss) - (end.GcCommitted - start.GcCommitted);
        long liveGrowth = end.LiveManaged - start.LiveManaged;
        context.Line($"    memory at end:   {end}; process peak RSS {Mib(peak)}");
        context.Line($"    growth: RSS {Mib(end.Rss - start.Rss)}, of which the GC's committed memory {Mib(end.GcCommitted - start.GcCommitted)}; " +
                     $"live managed {Mib(liveGrowth)}; an unpaced producer could have queued {Mib(messages * (long)payloadLength)} per run");
        context.Check(nativeGrowth < GrowthLimit,
            $"RSS outside the GC heap grew by less than {Mib(GrowthLimit)} (grew {Mib(nativeGrowth)}; loose bound, a scenario not a memory test)");
        context.Check(liveGrowth < GrowthLimit,
            $"live managed memory grew by less than {Mib(GrowthLimit)} (grew {Mib(liveGrowth)}; loose bound)");
        context.Work = $"{3 * messages} msgs";
    }

    private static async Task RunOnceAsync(ScenarioContext context, IBridgeRuntime producer, IBridgeRuntime owner,
        long messages, int payloadLength, int capacity)
    {
        string where = $"{producer.Name} -> {owner.Name} channel";
        int rounds = (int)Math.Min(Rounds, messages);
        var roundSizes = new long[rounds];
        for (int r = 0; r < rounds; r++) roundSizes[r] = messages / rounds + (r < messages % rounds ? 1 : 0);

        // 1. The channel and the slow consumer.
        (SenderPort sender, ReceiverPort receiver) = owner.CreateChannel(capacity);
        using (sender)
        using (receiver)
        {
            var consumer = new SlowConsumer(roundSizes, Stride(messages));
            Task<AgentReport> consuming = consumer.RunAsync(receiver.ToReader());
            var clock = Stopwatch.StartNew();

            // 2.–3. The producer rounds, and an in-flight sample as each ends.
            ulong sent = 0, sentChecksum = 0;
            long peak = 0;
            var samples = new List<long>(rounds);
            TimeSpan roundBound = Stall + TimeSpan.FromMilliseconds(roundSizes[0]);
            for (int r = 0; r < rounds; r++)
            {
                using SenderPort clone = sender.Clone(); // the agent takes it; disposing after that does nothing
                Task<AgentReport> round = producer.RunProducerAsync(clone, stream: (ulong)r + 1, (ulong)roundSizes[r], payloadLength);
                AgentReport report;
                try
                {
                    report = await round.WaitAsync(roundBound);
                }
                catch (TimeoutException)
                {
                    context.Fail($"{where}: producer round {r + 1} did not end within {roundBound.TotalSeconds:F0} s");
                    break;
                }
                sent += report.Messages;
                sentChecksum = unchecked(sentChecksum + report.Checksum);
                long inFlight = (long)sent - consumer.Received;
                samples.Add(inFlight);
                peak = Math.Max(peak, inFlight);
                bool ok = context.Check(report.Status == Status.Ok && report.Messages == (ulong)roundSizes[r],
                    $"{where}: producer round {r + 1} ended OK having sent {roundSizes[r]} (got {report.Status}, {report.Messages})");
                if (!ok) break;
            }
            TimeSpan producing = clock.Elapsed;

            // 4. The host's own sender is the last one: releasing it closes the channel.
            sender.Dispose();
            AgentReport? received = null;
            try
            {
                received = await consuming.WaitAsync(Stall + TimeSpan.FromMilliseconds(messages));
            }
            catch (TimeoutException)
            {
                context.Fail($"{where}: the consumer did not end after the channel closed");
            }
            clock.Stop();

            context.Line($"  {where,-22} producer {sent,7} msgs in {producing.TotalSeconds,5:F2} s; consumer done at {clock.Elapsed.TotalSeconds,5:F2} s; RSS now {Mib(Environment.WorkingSet)}");
            context.Line($"    in flight when each round's report arrived: {string.Join(" ", samples)}   peak {peak} (capacity {capacity} + at most 1 in the consumer's read)");
            if (received is { } c)
            {
                context.Line($"    consumer C# {Show(c.Status)} {c.Messages,7} msgs   checksum {c.Checksum:x16} {(c.Checksum == sentChecksum ? "= Σ producers" : "!= Σ producers")}   order errors {c.OrderErrors}");
                context.Check(c.Status == Status.Ok, $"{where}: the consumer read until the channel closed (got {c.Status})");
                context.Check(c.Messages == (ulong)messages && sent == (ulong)messages,
                    $"{where}: nothing dropped: {messages} sent and received (sent {sent}, received {c.Messages})");
                context.Check(c.OrderErrors == 0, $"{where}: every message in order with its payload intact ({c.OrderErrors} errors)");
                context.Check(c.Checksum == sentChecksum, $"{where}: consumer checksum {c.Checksum:x16} = Σ producer checksums {sentChecksum:x16}");
            }
            context.Check(peak <= capacity + 1, $"{where}: the producer was paced: peak in flight {peak} ≤ capacity {capacity} + 1");
        }
    }

    private static long Stride(long messages) => Math.Max(1, messages / 100);

    /// <summary>The slow C# consumer: reads until the channel is closed and drained, pausing 1 ms
    /// every <c>stride</c> reads; checks the exact order the rounds produce.</summary>
    private sealed class SlowConsumer(long[] roundSizes, long stride)
    {
        private long _received;

        /// <summary>Messages ReadAsync has returned so far (read by the host while this runs).</summary>
        public long Received => Interlocked.Read(ref _received);

        public async Task<AgentReport> RunAsync(ChannelReader<Message> reader)
        {
            using var stall = new CancellationTokenSource();
            int round = 0;
            long seq = 0;
            ulong checksum = 0, errors = 0;
            Status status = Status.Ok;
            try
            {
                while (true)
                {
                    stall.CancelAfter(Stall); // re-armed every read: 30 s without a message is a stall
                    Message m;
                    try
                    {
                        m = await reader.ReadAsync(stall.Token);
                    }
                    catch (ChannelClosedException)
                    {
                        break;
                    }
                    long n = Interlocked.Increment(ref _received);
                    checksum = unchecked(checksum + m.Checksum());
                    ulong expected = MessageChecksum.MakeId((ulong)round + 1, (ulong)seq);
                    if (m.Id != expected || !MessageChecksum.CheckPattern(m.Id, m.Payload.Span)) errors++;
                    if (++seq == (round < roundSizes.Length ? roundSizes[round] : long.MaxValue))
                    {
                        round++;
                        seq = 0;
                    }
                    if (n % stride == 0) await Task.Delay(1); // slow on purpose: the producer must wait
                }
            }
            catch (OperationCanceledException)
            {
                status = Status.Cancelled;
            }
            catch (InteropException e)
            {
                status = e.Status;
            }
            finally
            {
                ((IDisposable)reader).Dispose();
            }
            return new AgentReport(status, (ulong)Received, checksum, errors);
        }
    }

    /// <summary>RSS, the memory the GC keeps committed (its heap plus the allocation budget it
    /// reserves, which on a machine with a large cache is tens of MiB and is not given back after
    /// a collection), and the managed bytes still live after a full collection.</summary>
    private readonly record struct Memory(long Rss, long GcCommitted, long LiveManaged)
    {
        public static Memory Measure()
        {
            long live = GC.GetTotalMemory(forceFullCollection: true);
            return new Memory(Environment.WorkingSet, GC.GetGCMemoryInfo().TotalCommittedBytes, live);
        }

        public override string ToString() => $"RSS {Mib(Rss)}, GC committed {Mib(GcCommitted)}, live managed {Mib(LiveManaged)}";
    }

    private static string Show(Status s) => s.ToString().ToUpperInvariant().PadRight(9);

    private static string Mib(long bytes) => $"{bytes / (1024.0 * 1024.0):F1} MiB";
}
