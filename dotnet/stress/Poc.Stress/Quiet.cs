using Poc.Bridge;

namespace Poc.Stress;

/// <summary>The checks on <see cref="BridgeDiagnostics"/> that every phase makes once the bridge is
/// quiet (nothing in flight): live counts back to a baseline, the must-stay-zero counters unchanged,
/// and every import op that went PENDING completed exactly once.</summary>
internal static class Quiet
{
    /// <summary>Waits (bounded) until the live counts equal <paramref name="baseline"/>'s and every
    /// PENDING import op got its completion; then checks both and the mishap counters. Returns the
    /// snapshot it ended with.</summary>
    public static async Task<BridgeCounters> CheckAsync(PhaseContext phase, BridgeCounters baseline, string where)
    {
        bool settled = await Waits.UntilAsync(() =>
        {
            BridgeCounters n = BridgeDiagnostics.Snapshot();
            return n.LiveCounts == baseline.LiveCounts && n.PendingPortOps == n.CompletedPortOps;
        });
        BridgeCounters now = BridgeDiagnostics.Snapshot();
        if (!settled)
            phase.Fail($"{where}: the bridge did not become quiet within {Waits.Bound.TotalSeconds:F0} s");
        phase.Check(now.LiveCounts == baseline.LiveCounts,
            $"{where}: live counts back to baseline (handles, native agents, exported futures, lent functions, " +
            $"imported futures): baseline {baseline.LiveCounts}, now {now.LiveCounts}");
        phase.Check(now.PendingPortOps == now.CompletedPortOps,
            $"{where}: completions == import ops that went PENDING ({now.CompletedPortOps} vs {now.PendingPortOps})");
        phase.Check(now.Mishaps == baseline.Mishaps,
            $"{where}: stray callbacks, contained exceptions and stray releases unchanged " +
            $"(baseline {baseline.Mishaps}, now {now.Mishaps})");
        phase.Check(now.NativeAgentsStarted - now.NativeAgentsEnded == now.RunningNativeAgents,
            $"{where}: native agents started - ended == running ({now.NativeAgentsStarted} - {now.NativeAgentsEnded} vs {now.RunningNativeAgents})");
        return now;
    }

    /// <summary>"callbacks == ops" for the result row.</summary>
    public static string Describe(BridgeCounters c) =>
        c.CompletedPortOps == c.PendingPortOps
            ? $"{c.CompletedPortOps} = {c.PendingPortOps}"
            : $"{c.CompletedPortOps} != {c.PendingPortOps}";

    /// <summary>The tables and pools, one line.</summary>
    public static string Tables(BridgeCounters c) =>
        $"op tables send {c.ListedSendOps}/{c.SendOpTableCapacity} receive {c.ListedReceiveOps}/{c.ReceiveOpTableCapacity} " +
        $"future {c.ListedFutureOps}/{c.FutureOpTableCapacity} (listed/capacity); pooled send {c.PooledSendOps} " +
        $"receive {c.PooledReceiveOps} future {c.PooledFutureOps}; export handles {c.LiveExportHandles}/{c.ExportHandleCapacity}; " +
        $"native agents running {c.RunningNativeAgents}";
}
