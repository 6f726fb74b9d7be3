namespace Poc.Bridge.Import;

/// <summary>
/// Counters of things that must not happen: a native callback whose token named no armed op (a
/// stale, duplicated or forged completion — an exporter breaking "exactly once"), and exceptions
/// contained inside an [UnmanagedCallersOnly] callback (they may not unwind into native code).
/// Tests assert both stay at zero. Also counts how often rule 5 kept a message (for test output),
/// and, for <see cref="BridgeDiagnostics"/>, port ops that went PENDING and the completions that
/// matched an armed op (once nothing is in flight the two are equal: every PENDING got exactly one
/// completion). One Interlocked increment each, on the PENDING path and in the completion.
/// </summary>
internal static class ImportDiagnostics
{
    private static long s_strayCallbacks;
    private static long s_containedExceptions;
    private static long s_keptAfterCancel;
    private static long s_pendingOps;
    private static long s_matchedCompletions;

    /// <summary>Callbacks ignored because their token matched no armed op.</summary>
    internal static long StrayCallbacks => Volatile.Read(ref s_strayCallbacks);

    /// <summary>Exceptions caught at the native boundary of a callback.</summary>
    internal static long ContainedExceptions => Volatile.Read(ref s_containedExceptions);

    /// <summary>Messages that a cancelled read brought anyway and the stash kept (rule 5).</summary>
    internal static long KeptAfterCancel => Volatile.Read(ref s_keptAfterCancel);

    /// <summary>Port sends and receives whose native call answered PENDING (armed for a completion).</summary>
    internal static long PendingOps => Volatile.Read(ref s_pendingOps);

    /// <summary>Port completions that took over the op armed with their token.</summary>
    internal static long MatchedCompletions => Volatile.Read(ref s_matchedCompletions);

    internal static void OnPending() => Interlocked.Increment(ref s_pendingOps);

    internal static void OnMatchedCompletion() => Interlocked.Increment(ref s_matchedCompletions);

    internal static void OnKeptAfterCancel() => Interlocked.Increment(ref s_keptAfterCancel);

    internal static void OnStrayCallback() => Interlocked.Increment(ref s_strayCallbacks);

    internal static void OnContainedException(Exception exception)
    {
        Interlocked.Increment(ref s_containedExceptions);
        try
        {
            Console.Error.WriteLine($"poc: exception contained in a bridge callback: {exception}");
        }
        catch
        {
            // Nothing may escape a callback, not even a failing Console.
        }
    }
}
