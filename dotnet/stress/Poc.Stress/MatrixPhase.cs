// matrix — every producer x owner x consumer combination of {C++, Rust, .NET} (27: 24 cross-runtime,
// 3 same-runtime controls), N messages each.
//
// Per combination: the owner creates a channel (capacity 1, 16 or 1024 — --capacities — and payload 0, 16, 256 or
// 4096 bytes, varied over the combinations); the sender is cloned; two producer agents of P (streams
// 1 and 2, N/2 messages each, ids MakeId(stream, seq)) and one consumer agent of C run at once. The
// last producer's release closes the channel; the consumer drains it and ends.
// Checks: each of the three agents reports once (its task completes within its bound), every status
// is OK, the consumer received exactly what the producers sent (count and wrapping checksum), with 0
// order errors (per-stream seq order and payload pattern); after the combination the bridge is quiet
// (live counts back to baseline, completions == PENDING ops, no stray callback).
// lost = max(0, sent - received), duplicated = max(0, received - sent), reordered = order errors.
using System.Diagnostics;
using Poc.Bridge;

namespace Poc.Stress;

internal static class MatrixPhase
{
    private static readonly int[] s_payloads = [0, 16, 256, 4096];

    public static async Task RunAsync(PhaseContext phase, long messages, int[] capacities)
    {
        await using var cpp = new CppRuntime(threads: 2);
        await using var rust = new RustRuntime(threads: 2);
        await using var dotnet = new DotNetRuntime();
        IBridgeRuntime[] all = [cpp, rust, dotnet];

        BridgeCounters baseline = BridgeDiagnostics.Snapshot();
        PhaseContext.Line($"    {messages} messages per combination (2 producers x {messages / 2}); capacities {string.Join(", ", capacities)} " +
                          "and payloads 0, 16, 256, 4096 B vary over the combinations");
        PhaseContext.Line($"    {"#",2} {"PRODUCER",-8} {"OWNER",-6} {"CONSUMER",-8} {"CAP",5} {"PAYLOAD",7} {"SENT",10} {"RECEIVED",10} " +
                          $"{"LOST",5} {"DUP",5} {"ORDER",5} {"CHECKSUM",8} {"TIME",8} {"MSGS/S",10}  RESULT");
        int index = 0;
        long totalSent = 0;
        var clock = Stopwatch.StartNew();
        BridgeCounters last = baseline;
        foreach (IBridgeRuntime p in all)
        foreach (IBridgeRuntime o in all)
        foreach (IBridgeRuntime c in all)
        {
            int capacity = capacities[index % capacities.Length];
            int payload = s_payloads[(index / 3) % s_payloads.Length];
            index++;
            int failuresBefore = phase.Failures;
            totalSent += await RunCombinationAsync(phase, p, o, c, messages, capacity, payload, index);
            last = await Quiet.CheckAsync(phase, baseline, $"{p.Name} -> {o.Name} -> {c.Name}");
            if (phase.Failures != failuresBefore) PhaseContext.Line($"       ^ combination {index} failed");
        }
        PhaseContext.Line($"    27 combinations, {totalSent} messages in {clock.Elapsed.TotalSeconds:F1} s");
        PhaseContext.Line($"    after: {Quiet.Tables(last)}");
        phase.Work = $"27 combos x {messages} msgs";
        phase.CallbacksVsOps = Quiet.Describe(last);
    }

    /// <summary>One combination; returns the messages the producers sent.</summary>
    private static async Task<long> RunCombinationAsync(PhaseContext phase, IBridgeRuntime p,
        IBridgeRuntime o, IBridgeRuntime c, long messages, int capacity, int payload, int index)
    {
        string name = $"{p.Name} -> {o.Name} -> {c.Name} (capacity {capacity}, payload {payload})";
        ulong first = (ulong)(messages / 2), second = (ulong)(messages - messages / 2);
        var clock = Stopwatch.StartNew();
        var (tx, rx) = o.CreateChannel(capacity);
        SenderPort tx2;
        try
        {
            tx2 = tx.Clone();
        }
        catch
        {
            tx.Dispose();
            rx.Dispose();
            throw;
        }
        Task<AgentReport> consumer = c.RunConsumerAsync(rx);
        Task<AgentReport> producer1 = p.RunProducerAsync(tx, 1, first, payload);
        Task<AgentReport> producer2 = p.RunProducerAsync(tx2, 2, second, payload);

        TimeSpan bound = Waits.ForMessages(messages);
        AgentReport? r1 = await Waits.WithinAsync(producer1, bound, phase, $"{name}: producer 1");
        AgentReport? r2 = await Waits.WithinAsync(producer2, bound, phase, $"{name}: producer 2");
        AgentReport? rc = await Waits.WithinAsync(consumer, bound, phase, $"{name}: consumer");
        double seconds = clock.Elapsed.TotalSeconds;
        int reports = (r1 is null ? 0 : 1) + (r2 is null ? 0 : 1) + (rc is null ? 0 : 1);
        phase.Check(reports == 3, $"{name}: 3 agents started, {reports} reported");
        if (r1 is not { } a || r2 is not { } b || rc is not { } k) return 0;

        long sent = (long)(a.Messages + b.Messages);
        long received = (long)k.Messages;
        ulong sentSum = unchecked(a.Checksum + b.Checksum);
        long lost = Math.Max(0, sent - received), duplicated = Math.Max(0, received - sent);
        phase.Lost += lost;
        phase.Duplicated += duplicated;
        phase.Reordered += (long)k.OrderErrors;

        bool ok = true;
        ok &= phase.Check(a.Status == Status.Ok && b.Status == Status.Ok && k.Status == Status.Ok,
            $"{name}: every agent ends OK (producers {a.Status}, {b.Status}; consumer {k.Status})");
        ok &= phase.Check(a.Messages == first && b.Messages == second,
            $"{name}: producers sent {first} + {second} (reported {a.Messages} + {b.Messages})");
        ok &= phase.Check(received == sent, $"{name}: consumer received {received} == sent {sent}");
        ok &= phase.Check(k.Checksum == sentSum, $"{name}: consumer checksum {k.Checksum:x16} == producers' {sentSum:x16}");
        ok &= phase.Check(k.OrderErrors == 0, $"{name}: 0 order errors (got {k.OrderErrors})");
        PhaseContext.Line($"    {index,2} {p.Name,-8} {o.Name,-6} {c.Name,-8} {capacity,5} {payload,7} {sent,10} {received,10} " +
                          $"{lost,5} {duplicated,5} {k.OrderErrors,5} {(k.Checksum == sentSum ? "=" : "!="),8} {seconds,7:F2}s " +
                          $"{received / Math.Max(seconds, 1e-9),10:F0}  {(ok ? "ok" : "FAIL")}");
        return sent;
    }
}
