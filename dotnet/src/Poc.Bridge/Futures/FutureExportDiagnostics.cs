namespace Poc.Bridge.Futures;

/// <summary>
/// Counters of the future exporter (<see cref="ExportedFuture"/>) and of the functions .NET lends
/// (<see cref="LentFunctions"/>) for things that must not happen: an exception caught at the
/// native boundary of an [UnmanagedCallersOnly] function (it answered PANIC or was dropped; it may
/// not unwind into native code), and a lent function's <c>release</c> for a context that was not
/// live (released twice, forged). Tests assert both stay unchanged, or grow by exactly what they
/// injected.
/// </summary>
internal static class FutureExportDiagnostics
{
    private static long s_containedExceptions;
    private static long s_strayReleases;

    /// <summary>Exceptions caught at the native boundary of the exporter.</summary>
    internal static long ContainedExceptions => Volatile.Read(ref s_containedExceptions);

    /// <summary>Lent-function releases whose context named no live function.</summary>
    internal static long StrayReleases => Volatile.Read(ref s_strayReleases);

    internal static void OnStrayRelease() => Interlocked.Increment(ref s_strayReleases);

    internal static void OnContainedException(Exception exception)
    {
        Interlocked.Increment(ref s_containedExceptions);
        try
        {
            Console.Error.WriteLine($"poc: exception contained at the .NET future export boundary: {exception}");
        }
        catch
        {
            // Nothing may escape, not even a failing Console.
        }
    }
}
