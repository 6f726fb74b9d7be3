// restart — runtimes created, used, shut down and disposed R times in one process; the .NET side's
// handle tables and pools must not grow with the rounds.
//
// Protocol, per round (fresh CppRuntime, RustRuntime and DotNetRuntime each time):
//   1. fan-in into each owner: a channel of the owner (capacity 8), three sender ports (Clone), a
//      producer agent of C++, Rust and .NET (streams 1-3, M messages each), the owner's consumer agent;
//   2. a C# exchange on a channel of each owner through ToWriter / ToReader: a C# writer writes K
//      messages and completes; the C# reader reads with a token per read that is cancelled at a
//      random moment (never, at once, or from another thread after a random spin); a read that was
//      cancelled is retried; after the writer is done the reader drains to "closed";
//   3. all three runtimes shut down and are disposed (bounded waits).
// After every round (bounded wait for quiescence): BridgeDiagnostics live counts (export handles,
// running native agents, live futures, lent functions) are back to the baseline taken before
// round 1, the must-stay-zero counters are unchanged, completions == import ops that went PENDING.
// Per round: every agent OK, consumer count and checksum == the producers', 0 order errors; the C#
// reader got exactly 0..K-1, in order, nothing twice (cancelled reads keep their message, rule 5).
// Printed after round 1, R/2 and R: table capacities and live counts, managed heap after a full GC
// (GC.GetTotalMemory(true)) and RSS — measured, not asserted (no memory thresholds).
using System.Diagnostics;
using System.Threading.Channels;
using Poc.Bridge;

namespace Poc.Stress;

internal static class RestartPhase
{
    private const int Payload = 32;
    private const int ExchangeMessages = 256;
    private const int MaxSpin = 4000;

    public static async Task RunAsync(PhaseContext phase, int rounds, long messages)
    {
        BridgeCounters baseline = BridgeDiagnostics.Snapshot();
        BridgeCounters last = baseline;
        var rng = new Random(20261121);
        var report = new HashSet<int> { 1, Math.Max(1, rounds / 2), rounds };
        var clock = Stopwatch.StartNew();
        long cancelled = 0, keptAfterCancelBefore = baseline.KeptAfterCancel;
        PhaseContext.Line($"    {rounds} rounds; per round: 3 fan-ins of 3 x {messages} messages, 3 C# exchanges of " +
                          $"{ExchangeMessages} messages with random read cancels");
        for (int round = 1; round <= rounds; round++)
        {
            int failuresBefore = phase.Failures;
            var cpp = new CppRuntime(threads: 2);
            var rust = new RustRuntime(threads: 2);
            var dotnet = new DotNetRuntime();
            IBridgeRuntime[] all = [cpp, rust, dotnet];
            try
            {
                foreach (IBridgeRuntime owner in all)
                    await FanInAsync(phase, round, owner, all, (ulong)messages);
                foreach (IBridgeRuntime owner in all)
                    cancelled += await ExchangeAsync(phase, round, owner, new Random(rng.Next()));
                foreach (IBridgeRuntime r in all)
                    await Waits.EndsWithinAsync(r.ShutdownAsync().AsTask(), Waits.Bound, phase, $"round {round}: shut down {r.Name}");
            }
            finally
            {
                foreach (IBridgeRuntime r in all)
                    await Waits.EndsWithinAsync(r.DisposeAsync().AsTask(), Waits.Bound, phase, $"round {round}: dispose {r.Name}");
            }
            last = await Quiet.CheckAsync(phase, baseline, $"after round {round}");
            if (report.Contains(round))
            {
                long heap = GC.GetTotalMemory(forceFullCollection: true);
                PhaseContext.Line($"    after round {round,4} ({clock.Elapsed.TotalSeconds:F1} s): {Quiet.Tables(last)}; " +
                                  $"managed heap {heap / 1024.0 / 1024.0:F1} MiB, RSS {Memory.RssKiB() / 1024.0:F1} MiB, " +
                                  $"callbacks {Quiet.Describe(last)}");
            }
            else if (round % 10 == 0)
            {
                PhaseContext.Line($"    round {round}/{rounds} ({clock.Elapsed.TotalSeconds:F1} s)");
            }
            if (phase.Failures != failuresBefore) PhaseContext.Line($"       ^ round {round} failed");
        }
        PhaseContext.Line($"    {cancelled} C# reads cancelled, {last.KeptAfterCancel - keptAfterCancelBefore} messages kept after a cancel (rule 5)");
        phase.Work = $"{rounds} rounds x 3 runtimes";
        phase.CallbacksVsOps = Quiet.Describe(last);
    }

    private static async Task FanInAsync(PhaseContext phase, int round, IBridgeRuntime owner, IBridgeRuntime[] producers, ulong m)
    {
        string name = $"round {round}: fan-in into {owner.Name}";
        var (tx, rx) = owner.CreateChannel(8);
        SenderPort[] senders = [tx, tx.Clone(), tx.Clone()];
        Task<AgentReport> consuming = owner.RunConsumerAsync(rx);
        var producing = new Task<AgentReport>[3];
        for (int i = 0; i < 3; i++) producing[i] = producers[i].RunProducerAsync(senders[i], (ulong)i + 1, m, Payload);
        TimeSpan bound = Waits.ForMessages(3 * (long)m);
        ulong sent = 0, sum = 0;
        bool producersOk = true;
        for (int i = 0; i < 3; i++)
        {
            AgentReport? r = await Waits.WithinAsync(producing[i], bound, phase, $"{name}: {producers[i].Name} producer");
            if (r is not { } p)
            {
                producersOk = false;
                continue;
            }
            producersOk &= phase.Check(p.Status == Status.Ok && p.Messages == m,
                $"{name}: {producers[i].Name} producer OK with {m} (got {p})");
            sent += p.Messages;
            sum = unchecked(sum + p.Checksum);
        }
        AgentReport? rc = await Waits.WithinAsync(consuming, bound, phase, $"{name}: consumer");
        if (rc is not { } c || !producersOk) return;
        phase.Lost += Math.Max(0, (long)sent - (long)c.Messages);
        phase.Duplicated += Math.Max(0, (long)c.Messages - (long)sent);
        phase.Reordered += (long)c.OrderErrors;
        phase.Check(c.Status == Status.Ok && c.Messages == sent && c.Checksum == sum && c.OrderErrors == 0,
            $"{name}: consumer OK with all {sent} (checksum {sum:x16}); got {c}");
    }

    /// <summary>The C# exchange; returns how many reads ended cancelled.</summary>
    private static async Task<long> ExchangeAsync(PhaseContext phase, int round, IBridgeRuntime owner, Random rng)
    {
        string name = $"round {round}: C# exchange on a {owner.Name} channel";
        var (tx, rx) = owner.CreateChannel(1 << rng.Next(3));
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();
        Task writing = Task.Run(async () =>
        {
            try
            {
                for (ulong seq = 0; seq < ExchangeMessages; seq++)
                {
                    ulong id = MessageChecksum.MakeId(9, seq);
                    byte[] payload = new byte[Payload];
                    MessageChecksum.FillPattern(id, payload);
                    await writer.WriteAsync(new Message(id, payload));
                }
            }
            finally
            {
                writer.TryComplete();
            }
        });

        long cancelled = 0, received = 0, wrong = 0, duplicates = 0;
        ulong next = 0;
        var readerRng = new Random(rng.Next());
        var stall = Stopwatch.StartNew();
        try
        {
            while (true)
            {
                int mode = readerRng.Next(4);
                int spin = readerRng.Next(MaxSpin);
                using var cts = new CancellationTokenSource();
                ValueTask<Message> read = reader.ReadAsync(mode == 0 ? CancellationToken.None : cts.Token);
                Task cancelling = Task.CompletedTask;
                if (mode == 1) cts.Cancel();
                else if (mode >= 2) cancelling = Task.Run(() => { Thread.SpinWait(spin); cts.Cancel(); });
                try
                {
                    Message m = read.IsCompleted ? read.Result : await read.AsTask().WaitAsync(Waits.Bound);
                    received++;
                    ulong seq = m.Id & MessageChecksum.SeqMask;
                    if (seq < next) duplicates++;
                    else if (m.Id != MessageChecksum.MakeId(9, next) || !MessageChecksum.CheckPattern(m.Id, m.Payload.Span)) wrong++;
                    next = seq + 1;
                    stall.Restart();
                }
                catch (OperationCanceledException)
                {
                    cancelled++;
                    if (stall.Elapsed >= Waits.Bound)
                    {
                        phase.Fail($"{name}: no message for {Waits.Bound.TotalSeconds:F0} s (reads only cancelled)");
                        break;
                    }
                }
                catch (ChannelClosedException)
                {
                    break;
                }
                catch (TimeoutException)
                {
                    phase.Fail($"{name}: a ReadAsync did not end within {Waits.Bound.TotalSeconds:F0} s (hang)");
                    break;
                }
                finally
                {
                    await cancelling;
                }
            }
        }
        finally
        {
            ((IDisposable)reader).Dispose();
        }
        await Waits.EndsWithinAsync(writing, Waits.Bound, phase, $"{name}: the C# writer");
        phase.Lost += Math.Max(0, ExchangeMessages - received);
        phase.Duplicated += duplicates;
        phase.Reordered += wrong;
        phase.Check(received == ExchangeMessages && next == ExchangeMessages && wrong == 0 && duplicates == 0,
            $"{name}: read exactly seq 0..{ExchangeMessages - 1} in order (received {received}, out of order {wrong}, " +
            $"duplicates {duplicates})");
        return cancelled;
    }
}
