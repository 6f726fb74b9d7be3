using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Poc.Bridge.Import;
using Poc.Bridge.Interop;

namespace Poc.Bridge.Native;

/// <summary>
/// The done callback of one native agent (bridge.h <c>poc_agent_done_fn</c>) and the task it
/// completes. One per agent: the agent's <c>user</c> is a key into a table of running agents, so a
/// done that arrives twice or with a forged key finds nothing and is ignored (counted in
/// <see cref="ImportDiagnostics"/>) instead of touching freed memory.
/// </summary>
internal sealed unsafe class AgentCompletion
{
    private static readonly ConcurrentDictionary<ulong, AgentCompletion> s_running = new();
    private static long s_nextKey;
    private static long s_ended;

    private readonly TaskCompletionSource<AgentReport> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ulong _key;

    private AgentCompletion(ulong key) => _key = key;

    /// <summary>The done function handed to every <c>poc_*_start</c>.</summary>
    internal static delegate* unmanaged<void*, poc_agent_report*, void> DoneFunction =>
        (delegate* unmanaged<void*, poc_agent_report*, void>)(delegate* unmanaged[Cdecl]<void*, poc_agent_report*, void>)&OnDone;

    /// <summary>Agents started and not ended yet (tests).</summary>
    internal static int RunningCount => s_running.Count;

    /// <summary>Agent completions created so far (each start attempt; an abandoned one counts as ended).</summary>
    internal static long Started => Volatile.Read(ref s_nextKey);

    /// <summary>Done callbacks that matched a running agent, plus abandoned starts.</summary>
    internal static long Ended => Volatile.Read(ref s_ended);

    /// <summary>The <c>user</c> value for the start call.</summary>
    internal void* User => (void*)_key;

    /// <summary>Completes with the agent's report (continuations run asynchronously).</summary>
    internal Task<AgentReport> Task => _done.Task;

    /// <summary>Lists a new agent completion; call <see cref="Abandon"/> if the start fails.</summary>
    internal static AgentCompletion Create()
    {
        var agent = new AgentCompletion((ulong)Interlocked.Increment(ref s_nextKey));
        s_running[agent._key] = agent;
        return agent;
    }

    /// <summary>The start call failed: done will not be called.</summary>
    internal void Abandon()
    {
        if (s_running.TryRemove(_key, out _)) Interlocked.Increment(ref s_ended);
    }

    /// <summary>bridge.h <c>poc_agent_done_fn</c>: exactly once per agent, on a thread of the agent's
    /// runtime, never under a lock; <paramref name="report"/> is borrowed for the call.</summary>
    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnDone(void* user, poc_agent_report* report)
    {
        try
        {
            if (!s_running.TryRemove((ulong)user, out AgentCompletion? agent))
            {
                ImportDiagnostics.OnStrayCallback();
                return;
            }
            Interlocked.Increment(ref s_ended);
            agent._done.TrySetResult(report is null
                ? new AgentReport(Status.Panic, 0, 0, 0) // a NULL report breaks the contract
                : new AgentReport((Status)report->status, report->messages, report->checksum, report->order_errors));
        }
        catch (Exception e)
        {
            ImportDiagnostics.OnContainedException(e);
        }
    }
}
