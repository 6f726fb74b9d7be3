// The .NET importer of continuation-polled futures (bridge.h "Section - Futures", docs/contract.md
// "Futures"): any poc_future as a ValueTask<Message>.
//
// For one call (FutureOperation.Run, which takes ownership of the poc_future):
//
//   1. A pooled op is rented and *listed* in OperationTable<FutureOperation> (it gets a slot and a
//      sequence). Unlike the port ops, a future op is listed only while the exporter may call back
//      with its token — from Run until the future was released — so a ValueTask that is dropped
//      without being awaited leaves nothing behind: the op finishes, releases the native future,
//      unlists itself and is left to the GC.
//   2. Every poll arms the op with a fresh `user` token ((sequence << 32) | (slot + 1); no GCHandle).
//      The first poll runs on the caller's thread. OK/ERROR/PANIC: `deliver` already copied the
//      value or the error into the op (it borrows the op and checks the token); the future is
//      released and the ValueTask is returned completed — no callback, no thread hop.
//   3. PENDING: the wake (exactly once per PENDING, any thread, maybe before poll returned) takes
//      the arming over (CompareExchange of the token) and swaps _wakeState to Woken. The poller
//      swaps Polling → Waiting after poll returned: whoever comes second owns the next poll. If the
//      wake came first (during the poll), the poller polls again at once on its own thread (up to
//      MaxInlinePolls, then it queues itself); otherwise the wake queues the op on the thread pool
//      (IThreadPoolWorkItem) — it never polls inside the wake.
//   4. After the caller's first PENDING the CancellationToken is registered: it sets
//      _cancelRequested and calls the future's cancel (under _lock, unless the future was already
//      released). The exporter then fires the owed wake, the re-poll answers CANCELLED, and the
//      ValueTask ends with OperationCanceledException. A token cancelled before the call cancels
//      the future before its first poll.
//   5. Finished (any status but PENDING): the future is released exactly once (under _lock, so a
//      concurrent cancel never reaches a released handle), the op is unlisted, and as its last
//      action the ManualResetValueTaskSourceCore is completed (RunContinuationsAsynchronously).
//   6. GetResult disposes the registration (waiting for a running cancel callback), maps the status
//      to the result or an exception, and pools the op.
//
// Exceptions never escape the [UnmanagedCallersOnly] callbacks: they are counted in
// ImportDiagnostics.ContainedExceptions, stray callbacks in ImportDiagnostics.StrayCallbacks.
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading.Tasks.Sources;
using Poc.Bridge.Import;
using Poc.Bridge.Interop;

namespace Poc.Bridge.Futures;

/// <summary>
/// One awaited <c>poc_future</c>: the <c>user</c> of its polls, pooled, an
/// <see cref="IValueTaskSource{Message}"/> (protocol at the top of this file).
/// </summary>
internal sealed unsafe class FutureOperation : PortOperation, IValueTaskSource<Message>, IThreadPoolWorkItem
{
    /// <summary>Polls in a row on one thread when the future keeps waking itself during poll.</summary>
    private const int MaxInlinePolls = 16;

    private const int Polling = 0; // a poll runs; a wake only marks
    private const int Waiting = 1; // poll returned PENDING; the wake queues the next poll
    private const int Woken = 2;   // the wake came; whoever saw it second polls

    private static readonly Action<object?> s_onCancel = static state => ((FutureOperation)state!).RequestCancel();
    private static readonly ConcurrentQueue<FutureOperation> s_pool = new();
    private static readonly int s_poolCapacity = Math.Max(32, Environment.ProcessorCount * 8);
    private static int s_pooled;
    private static long s_liveFutures;

    private ManualResetValueTaskSourceCore<int> _core = new() { RunContinuationsAsynchronously = true };
    private readonly Lock _lock = new(); // a token's cancel vs. the release
    private poc_future _future;
    private SharedFuture? _shared;       // non-null: the release is shared with a progress reader
    private bool _released;              // under _lock
    private string _what = "";
    private CancellationToken _cancellationToken;
    private CancellationTokenRegistration _registration;
    private int _wakeState;
    private int _cancelRequested;
    private Message _value;              // what deliver copied: the value, or the error text
    private bool _hasValue;

    /// <summary>Native futures taken over by <see cref="Run"/> and not released yet (tests).</summary>
    internal static long LiveFutures => Volatile.Read(ref s_liveFutures);

    /// <summary>Ops kept in this class's pool now (diagnostics).</summary>
    internal static int PooledOperations => Math.Max(0, Volatile.Read(ref s_pooled));

    /// <summary>Ops listed now: calls whose future was not released yet (tests).</summary>
    internal static int ListedOperations => OperationTable<FutureOperation>.Count;

    private static delegate* unmanaged<void*, void> WakeFunction =>
        (delegate* unmanaged<void*, void>)(delegate* unmanaged[Cdecl]<void*, void>)&OnWake;

    private static delegate* unmanaged<void*, int, poc_message_view*, void> DeliverFunction =>
        (delegate* unmanaged<void*, int, poc_message_view*, void>)(delegate* unmanaged[Cdecl]<void*, int, poc_message_view*, void>)&OnDeliver;

    /// <summary>
    /// Awaits <paramref name="future"/>, which this call owns from now on (it is released exactly
    /// once, also when the ValueTask is never awaited). <paramref name="what"/> names the call in
    /// exceptions. With <paramref name="shared"/>, the release is the last of the two holders'.
    /// </summary>
    internal static ValueTask<Message> Run(poc_future future, string what, SharedFuture? shared,
        CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref s_liveFutures);
        FutureOperation op = Rent();
        op._future = future;
        op._shared = shared;
        op._released = false;
        op._what = what;
        op._cancellationToken = cancellationToken;
        OperationTable<FutureOperation>.Add(op);
        short version = op._core.Version;

        if (cancellationToken.IsCancellationRequested)
        {
            Volatile.Write(ref op._cancelRequested, 1);
            future.vtable->cancel(future.handle); // the first poll answers CANCELLED
        }

        int status = op.Drive();
        if (status == (int)Status.Pending)
        {
            if (cancellationToken.CanBeCanceled)
                op._registration = cancellationToken.UnsafeRegister(s_onCancel, op);
            return new ValueTask<Message>(op, version);
        }

        // Finished on the caller's thread: a synchronously completed ValueTask.
        op.ReleaseFuture();
        Exception? error = op.Outcome(status, out Message value);
        op.Recycle();
        if (error is null) return new ValueTask<Message>(value);
        return error is OperationCanceledException && cancellationToken.IsCancellationRequested
            ? ValueTask.FromCanceled<Message>(cancellationToken)
            : ValueTask.FromException<Message>(error);
    }

    /// <summary>Releases a native future (the one place that does, so <see cref="LiveFutures"/> counts it).</summary>
    internal static void ReleaseNative(poc_future future)
    {
        future.vtable->release(future.handle); // OK; a finished future owes no wake
        Interlocked.Decrement(ref s_liveFutures);
    }

    private static FutureOperation Rent()
    {
        if (s_pool.TryDequeue(out FutureOperation? op))
        {
            Interlocked.Decrement(ref s_pooled);
            return op;
        }
        return new FutureOperation();
    }

    /// <summary>Polls until the future finished or a wake is owed to someone else; returns the
    /// final status, or PENDING when the op is no longer this thread's to touch.</summary>
    private int Drive()
    {
        for (int polls = 1; ; polls++)
        {
            Volatile.Write(ref _wakeState, Polling);
            void* user = Arm();
            int status = _future.vtable->poll(_future.handle, WakeFunction, DeliverFunction, user);
            if (status != (int)Status.Pending)
            {
                Disarm();
                return status;
            }
            if (Interlocked.CompareExchange(ref _wakeState, Waiting, Polling) == Polling)
                return (int)Status.Pending; // the wake queues the next poll
            // Woken during the poll: the next poll is ours.
            if (polls >= MaxInlinePolls)
            {
                ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
                return (int)Status.Pending;
            }
        }
    }

    /// <summary>A poll queued by the wake (or by <see cref="Drive"/> after too many inline polls).</summary>
    void IThreadPoolWorkItem.Execute()
    {
        int status;
        try
        {
            status = Drive();
        }
        catch (Exception e)
        {
            ImportDiagnostics.OnContainedException(e);
            status = (int)Status.Panic;
        }
        if (status == (int)Status.Pending) return;
        ReleaseFuture();
        _core.SetResult(status); // last touch: GetResult may run and recycle the op
    }

    /// <summary>Releases the future once and unlists the op: no callback can name it any more.</summary>
    private void ReleaseFuture()
    {
        SharedFuture? shared = _shared;
        lock (_lock)
        {
            _released = true;
            if (shared is null) ReleaseNative(_future);
        }
        shared?.Drop();
        OperationTable<FutureOperation>.Remove(this);
    }

    /// <summary>The token fired: ask the future to stop (the owed wake then leads to CANCELLED).</summary>
    private void RequestCancel()
    {
        Volatile.Write(ref _cancelRequested, 1);
        lock (_lock)
        {
            if (!_released) _future.vtable->cancel(_future.handle); // never blocks; may run our wake
        }
    }

    /// <summary>The value for OK, else the exception for the status.</summary>
    private Exception? Outcome(int status, out Message value)
    {
        value = _value;
        string text = _hasValue ? Encoding.UTF8.GetString(_value.Payload.Span) : "";
        switch ((Status)status)
        {
            case Status.Ok when _hasValue:
                return null;
            case Status.Ok:
                return new InteropException(Status.Panic, $"{_what}: the future finished OK without delivering a value");
            case Status.Error:
                return new RemoteCallException(_what, unchecked((int)_value.Id), text);
            case Status.Panic:
                return new InteropException(Status.Panic, $"{_what} failed in the callee ({text})");
            case Status.Cancelled:
                return new OperationCanceledException($"{_what} was cancelled.",
                    Volatile.Read(ref _cancelRequested) != 0 ? _cancellationToken : default);
            default:
                return StatusErrors.ToException(status, $"complete {_what}", _cancellationToken);
        }
    }

    /// <summary>Resets the op and pools it (nothing refers to it any more).</summary>
    private void Recycle()
    {
        _future = default;
        _shared = null;
        _what = "";
        _cancellationToken = default;
        _registration = default;
        _cancelRequested = 0;
        _value = default;
        _hasValue = false;
        _core.Reset();
        if (Interlocked.Increment(ref s_pooled) <= s_poolCapacity)
        {
            s_pool.Enqueue(this);
            return;
        }
        Interlocked.Decrement(ref s_pooled);
    }

    /// <inheritdoc/>
    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    /// <inheritdoc/>
    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    /// <summary>The value, or the exception for the status; recycles the op.</summary>
    public Message GetResult(short token)
    {
        int status = _core.GetResult(token); // throws for a stale token: consumed already
        // Waits for a cancel callback that runs right now; afterwards nothing refers to the op.
        _registration.Dispose();
        Exception? error = Outcome(status, out Message value);
        Recycle();
        if (error is not null) throw error;
        return value;
    }

    /// <summary>bridge.h <c>poc_wake_fn</c>: exactly once per PENDING, any thread; queues the next
    /// poll unless the poller is still inside poll (then the poller polls again).</summary>
    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnWake(void* user)
    {
        try
        {
            FutureOperation? op = OperationTable<FutureOperation>.Find(user, out ulong token);
            if (op is null || !op.TryDisarm(token))
            {
                ImportDiagnostics.OnStrayCallback();
                return;
            }
            if (Interlocked.Exchange(ref op._wakeState, Woken) == Waiting)
                ThreadPool.UnsafeQueueUserWorkItem(op, preferLocal: false);
        }
        catch (Exception e)
        {
            ImportDiagnostics.OnContainedException(e);
        }
    }

    /// <summary>bridge.h <c>poc_recv_complete_fn</c> as poll's deliver: synchronous, inside poll;
    /// copies the value (OK) or the error (id = code, data = UTF-8 message) into the op.</summary>
    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnDeliver(void* user, int status, poc_message_view* view)
    {
        try
        {
            FutureOperation? op = OperationTable<FutureOperation>.Find(user, out _);
            if (op is null)
            {
                ImportDiagnostics.OnStrayCallback();
                return;
            }
            if (view is null) return; // Outcome reports OK without a value
            if (view->len > int.MaxValue || (view->len != 0 && view->data is null))
                throw new InvalidOperationException("The exporter delivered a view with a length but no data, or over 2 GiB.");
            op._value = view->len == 0
                ? new Message(view->id)
                : new Message(view->id, new ReadOnlySpan<byte>(view->data, (int)view->len).ToArray());
            op._hasValue = true;
        }
        catch (Exception e)
        {
            ImportDiagnostics.OnContainedException(e);
        }
    }
}
