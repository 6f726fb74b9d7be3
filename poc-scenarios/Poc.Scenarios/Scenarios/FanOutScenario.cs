// fan-out — one producer, consumers in all three runtimes sharing its messages: every message is
// consumed exactly once. Run three times: the channel owned by C++, then Rust, then .NET.
//
// The bridge gives a channel exactly one receiver port (bridge.h: "A channel has one receiver port";
// ReceiverPort has no Clone), so three runtimes cannot receive from the same port. The fan-out point
// is therefore explicit: a C# dispatcher holds the one receiver and hands each message to one of
// three lanes, one per consumer. Concurrent reads on one imported reader would only fan out to C#.
//
// Protocol, for each owner runtime O (the producer P is the next runtime: O = C++ → P = Rust,
// Rust → .NET, .NET → C++, so every runtime produces once and no run is a runtime talking to itself):
//   1. O creates the shared channel and three lane channels (capacity --capacity, default 8).
//   2. Consumer agents start on the lanes: lane 1 → C++, lane 2 → Rust, lane 3 → .NET.
//   3. P's producer agent sends N messages (--messages, default 3000) of stream 1 to the shared
//      channel, --payload bytes (default 32), awaiting each send, then releases its port: the
//      channel closes.
//   4. The dispatcher (C#, ToReader on the shared receiver, ToWriter on each lane's sender) reads
//      until the channel is closed and drained, checks that the stream arrives in order, and gives
//      each message to the first lane with room, trying the lanes in rotation from the one after
//      the previous pick (TryWrite); when all three are full it awaits WriteAsync on the next lane
//      in rotation. So the lanes share the work round-robin while the consumers keep up, and a lane
//      whose consumer lags gets less. At the end it completes the three lane writers: the
//      consumers drain their lanes and end.
// The consumer agents check per-stream order as "each seq follows the previous one of its stream,
// starting at 0". A lane carries a subsequence of the one stream, so a consumer must report as
// order errors exactly the jumps the dispatcher put into its lane (counted with the same rule), no
// more and no fewer; a payload whose pattern broke on the way would be counted too.
// Invariants: the producer ends OK having sent N; the dispatcher read N, in order, with the
// producer's checksum; each consumer ends OK with exactly the count, checksum and jumps routed to
// it; every consumer got at least one message (N ≥ 3: the first three go to three empty lanes);
// Σ consumer counts = N and Σ consumer checksums = the producer's checksum: each message consumed
// exactly once. Every wait is bounded (the dispatcher: 30 s without a message; an agent: 30 s +
// 50 µs a message); one that runs out is a failure, never a hang.
using System.Threading.Channels;
using Poc.Bridge;

namespace Poc.Scenarios;

internal sealed class FanOutScenario : Scenario
{
    private static readonly TimeSpan Stall = TimeSpan.FromSeconds(30);
    private const ulong Stream = 1;

    public override string Name => "fan-out";
    public override string Runtimes => "C# C++ Rust";
    public override string Description =>
        "one producer, consumers in C++, Rust and .NET share its messages (exactly once) through a C# dispatcher, once per channel owner";

    public override async Task RunAsync(ScenarioContext context)
    {
        long messages = context.Options.Messages ?? 3000;
        int payloadLength = context.Options.Payload ?? 32;
        int capacity = context.Options.Capacity ?? 8;

        await using var cpp = new CppRuntime(threads: 1);
        await using var rust = new RustRuntime(threads: 1);
        await using var dotnet = new DotNetRuntime();
        IBridgeRuntime[] runtimes = [cpp, rust, dotnet]; // also the consumers of lanes 1, 2, 3

        context.Line($"    1 producer x {messages} messages, {payloadLength}-byte payload, capacity {capacity} (shared channel and each lane)");
        for (int o = 0; o < runtimes.Length; o++)
            await RunOnceAsync(context, owner: runtimes[o], producer: runtimes[(o + 1) % runtimes.Length], runtimes,
                (ulong)messages, payloadLength, capacity);
        context.Work = $"{3 * messages} msgs";
    }

    private static async Task RunOnceAsync(ScenarioContext context, IBridgeRuntime owner, IBridgeRuntime producer,
        IBridgeRuntime[] consumers, ulong messages, int payloadLength, int capacity)
    {
        string where = $"{owner.Name} channel";
        context.Line($"  channel owned by {owner.Name}; producer: {producer.Name} agent; C# dispatcher -> 3 lanes owned by {owner.Name} -> consumer agents C++, Rust, .NET");

        // 1. The shared channel and the lanes. `using`: whatever was not handed over when something
        //    throws is released, so every channel still closes and nothing waits forever.
        (SenderPort shared, ReceiverPort sharedIn) = owner.CreateChannel(capacity);
        var laneSenders = new SenderPort[consumers.Length];
        var laneReceivers = new ReceiverPort[consumers.Length];
        try
        {
            for (int i = 0; i < consumers.Length; i++)
                (laneSenders[i], laneReceivers[i]) = owner.CreateChannel(capacity);

            // 2. The consumers, one per lane.
            var consuming = new Task<AgentReport>[consumers.Length];
            for (int i = 0; i < consumers.Length; i++)
                consuming[i] = consumers[i].RunConsumerAsync(laneReceivers[i]);

            // 3.–4. The dispatcher, then the producer.
            var lanes = new LaneTally[consumers.Length];
            for (int i = 0; i < lanes.Length; i++) lanes[i] = new LaneTally();
            Task<DispatchResult> dispatching = DispatchAsync(sharedIn.ToReader(), laneSenders.Select(s => s.ToWriter()).ToArray(), lanes);
            Task<AgentReport> producing = producer.RunProducerAsync(shared, Stream, messages, payloadLength);

            TimeSpan bound = Stall + TimeSpan.FromMicroseconds(50.0 * messages);
            AgentReport? produced = await WithinAsync(producing, bound, context, $"{where}: the {producer.Name} producer");
            DispatchResult? dispatched = null;
            try
            {
                dispatched = await dispatching.WaitAsync(bound);
            }
            catch (TimeoutException)
            {
                context.Fail($"{where}: the dispatcher did not end within {bound.TotalSeconds:F0} s");
            }
            var reports = new AgentReport?[consumers.Length];
            for (int i = 0; i < consumers.Length; i++)
                reports[i] = await WithinAsync(consuming[i], bound, context, $"{where}: the {consumers[i].Name} consumer");

            // Report and check.
            if (produced is { } p)
            {
                context.Line($"    producer   {producer.Name,-5}        {Show(p.Status)} {p.Messages,9} msgs   checksum {p.Checksum:x16}");
                context.Check(p.Status == Status.Ok, $"{where}: the producer ended OK (got {p.Status})");
                context.Check(p.Messages == messages, $"{where}: the producer sent {messages} (got {p.Messages})");
            }
            if (dispatched is { } d)
            {
                context.Line($"    dispatcher C#           {Show(d.Status)} {d.Received,9} msgs   checksum {d.Checksum:x16}   out of order {d.OrderErrors}; waited for a full lane {d.Waits} times");
                context.Check(d.Status == Status.Ok, $"{where}: the dispatcher read until the channel closed (got {d.Status})");
                context.Check(d.Received == messages, $"{where}: the dispatcher read {messages} (got {d.Received})");
                context.Check(d.OrderErrors == 0, $"{where}: the stream reached the dispatcher in order, payloads intact ({d.OrderErrors} errors)");
                if (produced is { } p2)
                    context.Check(d.Checksum == p2.Checksum, $"{where}: the dispatcher's checksum {d.Checksum:x16} = the producer's {p2.Checksum:x16}");
            }

            ulong consumedCount = 0, consumedChecksum = 0;
            for (int i = 0; i < consumers.Length; i++)
            {
                if (reports[i] is not { } c) continue;
                LaneTally lane = lanes[i];
                consumedCount += c.Messages;
                consumedChecksum = unchecked(consumedChecksum + c.Checksum);
                string who = $"{where}: the {consumers[i].Name} consumer (lane {i + 1})";
                context.Line($"    consumer   {consumers[i].Name,-5} lane {i + 1} {Show(c.Status)} {c.Messages,9} msgs   checksum {c.Checksum:x16} {(c.Checksum == lane.Checksum ? "= routed" : "!= routed")}   order errors {c.OrderErrors} (jumps routed {lane.Jumps})");
                context.Check(c.Status == Status.Ok, $"{who} ended OK (got {c.Status})");
                context.Check(c.Messages == lane.Count, $"{who} received what was routed to it: {lane.Count} (got {c.Messages})");
                context.Check(c.Checksum == lane.Checksum, $"{who}: checksum {c.Checksum:x16} = routed {lane.Checksum:x16}");
                context.Check(c.OrderErrors == lane.Jumps, $"{who}: order errors {c.OrderErrors} = the jumps routed to it {lane.Jumps}");
                if (messages >= (ulong)consumers.Length)
                    context.Check(c.Messages > 0, $"{who} got a share of the messages");
            }
            if (produced is { } pp)
            {
                bool sameCount = consumedCount == pp.Messages, sameChecksum = consumedChecksum == pp.Checksum;
                context.Line($"    Σ consumers              {consumedCount,9} msgs   checksum {consumedChecksum:x16}   {(sameCount && sameChecksum ? "= producer: each message consumed exactly once" : "!= producer")}");
                context.Check(sameCount, $"{where}: Σ consumer counts {consumedCount} = produced {pp.Messages}");
                context.Check(sameChecksum, $"{where}: Σ consumer checksums {consumedChecksum:x16} = the producer's {pp.Checksum:x16}");
            }
        }
        finally
        {
            shared.Dispose();
            sharedIn.Dispose();
            foreach (SenderPort? s in laneSenders) s?.Dispose();
            foreach (ReceiverPort? r in laneReceivers) r?.Dispose();
        }
    }

    private sealed record DispatchResult(Status Status, ulong Received, ulong Checksum, ulong OrderErrors, long Waits);

    /// <summary>What the dispatcher put into one lane, and the order errors a consumer agent must
    /// count for it (its rule: a message whose seq does not follow the previous one, or whose
    /// payload lost the pattern).</summary>
    private sealed class LaneTally
    {
        private ulong _nextSeq; // a stream starts at seq 0

        public ulong Count { get; private set; }
        public ulong Checksum { get; private set; }
        public ulong Jumps { get; private set; }

        public void Add(Message m)
        {
            Count++;
            Checksum = unchecked(Checksum + m.Checksum());
            ulong seq = m.Id & MessageChecksum.SeqMask;
            if (seq != _nextSeq || !MessageChecksum.CheckPattern(m.Id, m.Payload.Span)) Jumps++;
            _nextSeq = seq + 1;
        }
    }

    /// <summary>The fan-out point: reads the shared channel until it is closed and drained and
    /// hands each message to one lane (first with room, in rotation); then completes every lane.</summary>
    private static async Task<DispatchResult> DispatchAsync(ChannelReader<Message> input, ChannelWriter<Message>[] lanes,
        LaneTally[] tallies)
    {
        using var stall = new CancellationTokenSource();
        ulong received = 0, checksum = 0, orderErrors = 0, expectedSeq = 0;
        long waits = 0;
        int next = 0;
        Status status = Status.Ok;
        try
        {
            while (true)
            {
                if ((received & 255) == 0) stall.CancelAfter(Stall); // re-armed as messages arrive
                Message m;
                try
                {
                    m = await input.ReadAsync(stall.Token);
                }
                catch (ChannelClosedException)
                {
                    break; // closed and drained: the producer is done
                }
                received++;
                checksum = unchecked(checksum + m.Checksum());
                if (m.Id != MessageChecksum.MakeId(Stream, expectedSeq) || !MessageChecksum.CheckPattern(m.Id, m.Payload.Span))
                    orderErrors++;
                expectedSeq = (m.Id & MessageChecksum.SeqMask) + 1;

                int lane = -1;
                for (int k = 0; k < lanes.Length && lane < 0; k++)
                {
                    int candidate = (next + k) % lanes.Length;
                    if (lanes[candidate].TryWrite(m)) lane = candidate;
                }
                if (lane < 0)
                {
                    lane = next;
                    waits++;
                    await lanes[lane].WriteAsync(m, stall.Token); // all full: wait for room in the next one
                }
                tallies[lane].Add(m);
                next = (lane + 1) % lanes.Length;
            }
        }
        catch (OperationCanceledException)
        {
            status = Status.Cancelled; // no progress for 30 s
        }
        catch (ChannelClosedException)
        {
            status = Status.Closed; // a lane closed under us: its consumer went away
        }
        catch (InteropException e)
        {
            status = e.Status;
        }
        finally
        {
            foreach (ChannelWriter<Message> lane in lanes) lane.TryComplete(); // the consumers drain and end
            ((IDisposable)input).Dispose();
        }
        return new DispatchResult(status, received, checksum, orderErrors, waits);
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
