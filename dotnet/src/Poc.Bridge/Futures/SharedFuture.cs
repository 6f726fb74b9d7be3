using Poc.Bridge.Interop;

namespace Poc.Bridge.Futures;

/// <summary>
/// A <c>poc_future</c> with two holders — the <see cref="FutureOperation"/> that awaits it and a
/// <see cref="RustSyncCall"/> that reads its progress — released by whichever lets go last, so the
/// progress stays readable after the call finished (bridge.h: <c>poc_rust_sync_progress</c> is valid
/// until the future is released).
/// </summary>
internal sealed unsafe class SharedFuture(poc_future future)
{
    private readonly Lock _lock = new();
    private int _holders = 2; // under _lock
    private bool _readerDropped; // under _lock

    /// <summary>Drops one hold; the last one releases the native future (no wake is owed then:
    /// the awaiting op drops its hold only after the future finished).</summary>
    internal void Drop()
    {
        lock (_lock)
        {
            if (--_holders == 0) FutureOperation.ReleaseNative(future);
        }
    }

    /// <summary>The progress reader lets go (idempotent).</summary>
    internal void DropReader()
    {
        lock (_lock)
        {
            if (_readerDropped) return;
            _readerDropped = true;
        }
        Drop();
    }

    /// <summary><c>poc_rust_sync_progress</c> while the reader holds the future; false after
    /// <see cref="DropReader"/>.</summary>
    internal bool TryReadSyncProgress(out ulong stepsDone, out bool running, out int status)
    {
        lock (_lock)
        {
            stepsDone = 0;
            running = false;
            status = (int)Status.Invalid;
            if (_readerDropped) return false;
            ulong steps;
            uint alive;
            status = NativeMethods.poc_rust_sync_progress(future.handle, &steps, &alive);
            stepsDone = steps;
            running = alive != 0;
            return true;
        }
    }
}
