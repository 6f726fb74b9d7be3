using Poc.Bridge.Export;
using Poc.Bridge.Futures;
using Poc.Bridge.Import;
using Poc.Bridge.Native;

namespace Poc.Bridge;

/// <summary>
/// Process-wide counters of the .NET side of the bridge, for stress runs and leak checks: how many
/// import ops, exported handles, native agents and futures are alive, how big the tables behind
/// them have grown, and the counters of things that must never happen.
/// </summary>
/// <remarks>
/// <para>A snapshot reads each counter on its own (no global lock), so it is exact only while the
/// bridge is quiet (nothing in flight); under load it is a consistent-enough estimate. Live counts
/// return to what they were once everything that was created has been released and every agent and
/// op has ended; capacities never shrink, so a long run whose capacities stay flat did not grow its
/// tables.</para>
/// <para>Cost: reading a snapshot takes two short locks (the op tables and the export handle table,
/// whose live count is a scan). The bridge itself pays one <c>Interlocked.Increment</c> per port
/// op that went PENDING and one per completion (<see cref="BridgeCounters.PendingPortOps"/>,
/// <see cref="BridgeCounters.CompletedPortOps"/>), and one per native agent end.</para>
/// </remarks>
public static class BridgeDiagnostics
{
    /// <summary>Reads every counter now.</summary>
    public static BridgeCounters Snapshot() => new(
        ListedSendOps: OperationTable<SendOperation>.Count,
        ListedReceiveOps: OperationTable<ReceiveOperation>.Count,
        ListedFutureOps: OperationTable<FutureOperation>.Count,
        PooledSendOps: OperationPool<SendOperation>.Count,
        PooledReceiveOps: OperationPool<ReceiveOperation>.Count,
        PooledFutureOps: FutureOperation.PooledOperations,
        SendOpTableCapacity: OperationTable<SendOperation>.Capacity,
        ReceiveOpTableCapacity: OperationTable<ReceiveOperation>.Capacity,
        FutureOpTableCapacity: OperationTable<FutureOperation>.Capacity,
        LiveExportHandles: PortTable.Count,
        ExportHandleCapacity: PortTable.Capacity,
        RunningNativeAgents: AgentCompletion.RunningCount,
        NativeAgentsStarted: AgentCompletion.Started,
        NativeAgentsEnded: AgentCompletion.Ended,
        LiveExportedFutures: ExportedFuture.LiveFutures,
        LiveLentFunctions: LentFunctions.LiveContexts,
        LiveImportedFutures: FutureOperation.LiveFutures,
        PendingPortOps: ImportDiagnostics.PendingOps,
        CompletedPortOps: ImportDiagnostics.MatchedCompletions,
        StrayCallbacks: ImportDiagnostics.StrayCallbacks,
        ImportContainedExceptions: ImportDiagnostics.ContainedExceptions,
        ExportContainedExceptions: FutureExportDiagnostics.ContainedExceptions,
        StrayReleases: FutureExportDiagnostics.StrayReleases,
        KeptAfterCancel: ImportDiagnostics.KeptAfterCancel);
}

/// <summary>One reading of <see cref="BridgeDiagnostics.Snapshot"/>.</summary>
/// <param name="ListedSendOps">Import send ops listed in their op table: pooled ones plus those in
/// use (a write in flight). Back to its earlier value when nothing is in flight and the pool kept
/// what it had.</param>
/// <param name="ListedReceiveOps">Import receive ops listed in their op table (pooled + in use).</param>
/// <param name="ListedFutureOps">Imported-future ops listed (awaited futures not yet released).</param>
/// <param name="PooledSendOps">Send ops kept by the pool for reuse (bounded by the pool's size).</param>
/// <param name="PooledReceiveOps">Receive ops kept by the pool for reuse (bounded).</param>
/// <param name="PooledFutureOps">Future ops kept by their pool for reuse (bounded).</param>
/// <param name="SendOpTableCapacity">Length of the send op table's array: grows by doubling, never
/// shrinks — flat over a long run means the table did not grow.</param>
/// <param name="ReceiveOpTableCapacity">Length of the receive op table's array.</param>
/// <param name="FutureOpTableCapacity">Length of the future op table's array.</param>
/// <param name="LiveExportHandles">Live handles in the export handle table: .NET-exported sender
/// and receiver ports, futures and lent-function contexts not released yet.</param>
/// <param name="ExportHandleCapacity">Length of the export handle table's slot array (never shrinks).</param>
/// <param name="RunningNativeAgents">C++ and Rust agents started from .NET whose done callback has
/// not arrived yet.</param>
/// <param name="NativeAgentsStarted">Native agent starts so far (monotonic).</param>
/// <param name="NativeAgentsEnded">Native agents that ended (done callback matched, or the start
/// failed) so far (monotonic); equals <see cref="NativeAgentsStarted"/> when none runs.</param>
/// <param name="LiveExportedFutures">.NET calls exported as futures, not yet both released and finished.</param>
/// <param name="LiveLentFunctions">Functions .NET lent to native code whose context was not released yet.</param>
/// <param name="LiveImportedFutures">Native futures .NET awaits that were not released yet.</param>
/// <param name="PendingPortOps">Import sends and receives whose port call answered PENDING, so far
/// (monotonic).</param>
/// <param name="CompletedPortOps">Completions that matched an armed import op, so far (monotonic).
/// Equal to <see cref="PendingPortOps"/> once nothing is in flight: each PENDING got exactly one
/// completion.</param>
/// <param name="StrayCallbacks">Must stay unchanged: callbacks (completions, wakes, agent dones)
/// whose token named no armed op or running agent — an exporter breaking "exactly once".</param>
/// <param name="ImportContainedExceptions">Must stay unchanged: exceptions caught at the native
/// boundary of an import callback.</param>
/// <param name="ExportContainedExceptions">Must stay unchanged: exceptions caught at the native
/// boundary of the .NET future exporter and lent functions.</param>
/// <param name="StrayReleases">Must stay unchanged: lent-function releases of a context that was
/// not live (double or forged release).</param>
/// <param name="KeptAfterCancel">Messages a cancelled read brought anyway and the reader kept for
/// its next read (bridge.h rule 5; informational, monotonic).</param>
public readonly record struct BridgeCounters(
    int ListedSendOps,
    int ListedReceiveOps,
    int ListedFutureOps,
    int PooledSendOps,
    int PooledReceiveOps,
    int PooledFutureOps,
    int SendOpTableCapacity,
    int ReceiveOpTableCapacity,
    int FutureOpTableCapacity,
    int LiveExportHandles,
    int ExportHandleCapacity,
    int RunningNativeAgents,
    long NativeAgentsStarted,
    long NativeAgentsEnded,
    long LiveExportedFutures,
    long LiveLentFunctions,
    long LiveImportedFutures,
    long PendingPortOps,
    long CompletedPortOps,
    long StrayCallbacks,
    long ImportContainedExceptions,
    long ExportContainedExceptions,
    long StrayReleases,
    long KeptAfterCancel)
{
    /// <summary>The counts that must return to a baseline once everything was released: export
    /// handles, running native agents, and live futures and lent functions.</summary>
    public (int Handles, int Agents, long ExportedFutures, long LentFunctions, long ImportedFutures) LiveCounts =>
        (LiveExportHandles, RunningNativeAgents, LiveExportedFutures, LiveLentFunctions, LiveImportedFutures);

    /// <summary>The counters of things that must never happen (they must not move).</summary>
    public (long Strays, long ImportContained, long ExportContained, long StrayReleases) Mishaps =>
        (StrayCallbacks, ImportContainedExceptions, ExportContainedExceptions, StrayReleases);
}
