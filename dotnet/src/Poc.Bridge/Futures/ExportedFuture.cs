// The .NET exporter of continuation-polled futures (bridge.h "Section - Futures", docs/contract.md
// "Futures"): a .NET ValueTask<Message> behind a poc_future {handle, vtable}, so that Rust and C++
// (and .NET's own importer, FutureOperation) can await a C# async call.
//
// One exported call:
//
//   1. Export/Start makes an ExportedFuture, lists it in PortTable under a tag-0xD3 handle
//      (generation-checked: a stale, released, forged or foreign handle answers INVALID), and only
//      then runs the body (ExportedFunction calls) with the token of the call's own
//      CancellationTokenSource. A body that throws synchronously is a finished call like any other.
//   2. A ValueTask that is already complete is read at once (no continuation, no wake: the first
//      poll answers OK/ERROR/PANIC). Otherwise one continuation is registered
//      (ConfiguredValueTaskAwaiter.UnsafeOnCompleted); it reads the outcome on the thread that
//      completed the task.
//   3. The outcome: a value → OK; RemoteCallException → ERROR {id = Code, data = UTF-8
//      RemoteMessage}; OperationCanceledException after cancel was requested → CANCELLED; any other
//      exception → PANIC {id = 0, data = "<exception type>: <message>"}.
//   4. poll(handle, wake, deliver, user), under the lock: an owed wake (an earlier PENDING that was
//      not woken yet) is taken out and fired when the poll starts; cancel requested → CANCELLED
//      (every later poll too); finished → marked delivered, then deliver(user, status, &view) runs
//      synchronously on the polling thread, outside the lock, and poll returns the status (later
//      polls answer INVALID); otherwise {wake, user} is stored and poll answers PENDING.
//   5. The completion (step 2) publishes the outcome and takes the stored wake under the same lock,
//      then fires it outside the lock: a completion racing with a poll is seen by exactly one of
//      them (the poll delivers, or it stores the wake that the completion takes) — no lost wake,
//      never two.
//   6. cancel: marks the future (the next poll answers CANCELLED), fires the owed wake and cancels
//      the call's CancellationTokenSource with CancelAsync — the token is cancelled at once, its
//      callbacks run on the thread pool, so cancel never runs user code inline and never blocks.
//   7. release: removes the handle (a second release answers INVALID), cancels an unfinished call,
//      fires the owed wake. The object lives on until the body's task completed (its continuation
//      still runs); LiveFutures counts it until both happened.
//
// Every wake is fired outside the lock and counted (WakesFired, WakesFiredOnThisThread). Exceptions
// never escape the [UnmanagedCallersOnly] functions: they answer PANIC and are counted in
// FutureExportDiagnostics.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Poc.Bridge.Export;
using Poc.Bridge.Interop;
using unsafe WakeFn = delegate* unmanaged<void*, void>;
using unsafe DeliverFn = delegate* unmanaged<void*, int, Poc.Bridge.Interop.poc_message_view*, void>;

namespace Poc.Bridge.Futures;

/// <summary>
/// One .NET call exported as a <c>poc_future</c> (protocol at the top of this file). Created by
/// <see cref="Export"/> or <see cref="Start"/>; reached from native code only through its handle.
/// </summary>
internal sealed unsafe class ExportedFuture
{
    /// <summary>The vtable of every future .NET exports (native memory, never freed).</summary>
    internal static readonly poc_future_vtable* VTable = CreateVTable();

    /// <summary>Tests: makes the next vtable call on this thread throw inside its guard.</summary>
    [ThreadStatic] internal static bool t_faultOnNextCall;

    [ThreadStatic] private static long t_wakesFired;
    private static long s_wakesFired;
    private static long s_pendingAnswers;
    private static long s_live;

    private static readonly Action<Task> s_observeCancellation = static t =>
    {
        if (t.Exception is { } e) FutureExportDiagnostics.OnContainedException(e);
    };

    private readonly CancellationTokenSource? _cts;
    private ConfiguredValueTaskAwaitable<Message>.ConfiguredValueTaskAwaiter _awaiter;

    // Under lock (this) — Monitor on this object: it is internal and reached only through the handle
    // table, nobody else locks it, and a thin lock costs no allocation (a Lock object would).
    private bool _finished;
    private bool _delivered;
    private bool _cancelRequested;
    private bool _released;
    private WakeFn _owedWake;   // non-null: a PENDING whose wake has not fired yet
    private void* _owedUser;

    // Written before _finished is set (under the lock), read-only afterwards.
    private int _status;
    private Message _value;

    // The handle and the body's task; the last one to let go counts the future dead.
    private int _holds = 2;

    private ExportedFuture(CancellationTokenSource? cts)
    {
        _cts = cts;
        Interlocked.Increment(ref s_live);
    }

    /// <summary>Exported futures not yet both released and finished (tests).</summary>
    internal static long LiveFutures => Volatile.Read(ref s_live);

    /// <summary>Wakes fired by the exporter, process-wide (tests).</summary>
    internal static long WakesFired => Volatile.Read(ref s_wakesFired);

    /// <summary>Polls answered PENDING, process-wide (tests: a wake is owed once this grew).</summary>
    internal static long PendingAnswers => Volatile.Read(ref s_pendingAnswers);

    /// <summary>Wakes fired by the exporter on the calling thread (tests: "the wake came from this thread").</summary>
    internal static long WakesFiredOnThisThread => t_wakesFired;

    /// <summary>Exports <paramref name="task"/> as a future. <paramref name="cts"/> (may be null) is
    /// what cancel and release cancel; the future owns it from now on.</summary>
    /// <exception cref="OutOfMemoryException">The handle table is full.</exception>
    internal static poc_future Export(ValueTask<Message> task, CancellationTokenSource? cts)
    {
        var future = new ExportedFuture(cts);
        ulong handle = future.List();
        future.Attach(task);
        return new poc_future { handle = handle, vtable = VTable };
    }

    /// <summary>Starts one call of <paramref name="body"/> with a fresh CancellationTokenSource and
    /// exports it. A body that throws gives a finished future (ERROR or PANIC).</summary>
    /// <exception cref="OutOfMemoryException">The handle table is full (the body did not run).</exception>
    internal static poc_future Start(Func<Message, CancellationToken, ValueTask<Message>> body, Message argument)
    {
        var future = new ExportedFuture(new CancellationTokenSource());
        ulong handle = future.List();
        ValueTask<Message> task;
        try
        {
            task = body(argument, future._cts!.Token);
        }
        catch (Exception e)
        {
            (int status, Message value) = future.Describe(e);
            future.Complete(status, value);
            return new poc_future { handle = handle, vtable = VTable };
        }
        future.Attach(task);
        return new poc_future { handle = handle, vtable = VTable };
    }

    private ulong List()
    {
        try
        {
            return PortTable.Insert(PortTable.FutureTag, this);
        }
        catch
        {
            Interlocked.Decrement(ref s_live);
            throw;
        }
    }

    /// <summary>Reads a completed task now, or registers the one continuation that will.</summary>
    private void Attach(ValueTask<Message> task)
    {
        if (task.IsCompletedSuccessfully)
        {
            Complete((int)Status.Ok, task.Result);
            return;
        }
        if (task.IsCompleted)
        {
            int status;
            Message value;
            try
            {
                value = task.GetAwaiter().GetResult();
                status = (int)Status.Ok;
            }
            catch (Exception e)
            {
                (status, value) = Describe(e);
            }
            Complete(status, value);
            return;
        }
        _awaiter = task.ConfigureAwait(false).GetAwaiter();
        _awaiter.UnsafeOnCompleted(OnTaskCompleted);
    }

    /// <summary>The task's continuation: runs once, on the thread that completed the task.</summary>
    private void OnTaskCompleted()
    {
        try
        {
            int status;
            Message value;
            try
            {
                value = _awaiter.GetResult();
                status = (int)Status.Ok;
            }
            catch (Exception e)
            {
                (status, value) = Describe(e);
            }
            _awaiter = default;
            Complete(status, value);
        }
        catch (Exception e)
        {
            // Complete cannot throw (a lock, a native call); nothing may escape to the thread pool.
            FutureExportDiagnostics.OnContainedException(e);
        }
    }

    /// <summary>The status and value for an exception of the body (step 3).</summary>
    private (int Status, Message Value) Describe(Exception exception)
    {
        try
        {
            return exception switch
            {
                RemoteCallException remote => ((int)Status.Error,
                    new Message(unchecked((ulong)(long)remote.Code), Encoding.UTF8.GetBytes(remote.RemoteMessage ?? ""))),
                OperationCanceledException when _cts is { IsCancellationRequested: true } => ((int)Status.Cancelled, default),
                _ => ((int)Status.Panic, new Message(0, Encoding.UTF8.GetBytes($"{exception.GetType().FullName}: {exception.Message}"))),
            };
        }
        catch (Exception e)
        {
            // A Message getter that throws: still a PANIC, with what can be said safely.
            FutureExportDiagnostics.OnContainedException(e);
            return ((int)Status.Panic, new Message(0, Encoding.UTF8.GetBytes(exception.GetType().FullName ?? "exception")));
        }
    }

    /// <summary>Publishes the outcome, fires the stored wake outside the lock, drops the task's hold.</summary>
    private void Complete(int status, Message value)
    {
        WakeFn wake;
        void* user;
        lock (this)
        {
            _status = status;
            _value = value;
            _finished = true;
            wake = TakeOwedWake(out user);
        }
        Fire(wake, user);
        DropHold();
    }

    private int Poll(WakeFn wake, DeliverFn deliver, void* user)
    {
        WakeFn owed;
        void* owedUser;
        int answer;
        bool deliverNow = false;
        lock (this)
        {
            if (_released || _delivered) return (int)Status.Invalid;
            owed = TakeOwedWake(out owedUser);
            if (_cancelRequested)
            {
                answer = (int)Status.Cancelled;
            }
            else if (_finished)
            {
                _delivered = true;
                answer = _status;
                deliverNow = answer != (int)Status.Cancelled;
            }
            else
            {
                _owedWake = wake;
                _owedUser = user;
                answer = (int)Status.Pending;
                Interlocked.Increment(ref s_pendingAnswers);
            }
        }
        Fire(owed, owedUser);
        if (deliverNow) Deliver(deliver, user, answer, _value);
        return answer;
    }

    private static void Deliver(DeliverFn deliver, void* user, int status, Message value)
    {
        ReadOnlySpan<byte> payload = value.Payload.Span;
        fixed (byte* data = payload)
        {
            var view = new poc_message_view { id = value.Id, data = data, len = (nuint)payload.Length };
            deliver(user, status, &view);
        }
    }

    private int Cancel()
    {
        WakeFn owed;
        void* owedUser;
        lock (this)
        {
            if (_released) return (int)Status.Invalid; // resolved just before a release
            if (_delivered || _cancelRequested) return (int)Status.Ok;
            _cancelRequested = true;
            owed = TakeOwedWake(out owedUser);
            // Under the lock so that the CTS cannot be disposed meanwhile; CancelAsync runs no callback inline.
            if (!_finished) CancelCall();
        }
        Fire(owed, owedUser);
        return (int)Status.Ok;
    }

    /// <summary>After the handle was removed from the table (exactly once).</summary>
    private void Release()
    {
        WakeFn owed;
        void* owedUser;
        lock (this)
        {
            _released = true;
            owed = TakeOwedWake(out owedUser);
            if (!_finished) CancelCall();
        }
        Fire(owed, owedUser);
        DropHold();
    }

    private WakeFn TakeOwedWake(out void* user)
    {
        WakeFn wake = _owedWake;
        user = _owedUser;
        _owedWake = null;
        _owedUser = null;
        return wake;
    }

    private static void Fire(WakeFn wake, void* user)
    {
        if (wake == null) return;
        Interlocked.Increment(ref s_wakesFired);
        t_wakesFired++;
        wake(user);
    }

    /// <summary>Cancels the call's token: state now, callbacks on the thread pool. Under the lock.</summary>
    private void CancelCall()
    {
        if (_cts is null || _cts.IsCancellationRequested) return;
        Task callbacks = _cts.CancelAsync();
        if (!callbacks.IsCompletedSuccessfully)
            callbacks.ContinueWith(s_observeCancellation, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously | TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
    }

    private void DropHold()
    {
        if (Interlocked.Decrement(ref _holds) != 0) return;
        // Released and finished: no vtable call can reach the CTS any more (cancel sees _released).
        // A cancelled CTS is left to the GC: CancelAsync may still be running its callbacks on the
        // thread pool, and disposing it first could drop them.
        if (_cts is { IsCancellationRequested: false }) _cts.Dispose();
        Interlocked.Decrement(ref s_live);
    }

    // ---- the vtable ----------------------------------------------------------------------------

    // [UnmanagedCallersOnly] with CallConvCdecl (bridge.h's C convention); NativeMethods declares the
    // fields with the platform default, which is cdecl on every 64-bit platform, hence the casts.
    private static poc_future_vtable* CreateVTable()
    {
        var vt = (poc_future_vtable*)NativeMemory.AllocZeroed((nuint)sizeof(poc_future_vtable));
        vt->abi_version = NativeMethods.AbiVersion;
        vt->size = (uint)sizeof(poc_future_vtable);
        vt->poll = (delegate* unmanaged<ulong, WakeFn, DeliverFn, void*, int>)
            (delegate* unmanaged[Cdecl]<ulong, WakeFn, DeliverFn, void*, int>)&VtPoll;
        vt->cancel = (delegate* unmanaged<ulong, int>)(delegate* unmanaged[Cdecl]<ulong, int>)&VtCancel;
        vt->release = (delegate* unmanaged<ulong, int>)(delegate* unmanaged[Cdecl]<ulong, int>)&VtRelease;
        return vt;
    }

    private static ExportedFuture? Resolve(ulong handle) =>
        PortTable.Resolve(handle, PortTable.FutureTag) as ExportedFuture;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int VtPoll(ulong handle, WakeFn wake, DeliverFn deliver, void* user)
    {
        try
        {
            ThrowIfFaultInjected();
            if (wake == null || deliver == null) return (int)Status.Invalid;
            return Resolve(handle) is { } future ? future.Poll(wake, deliver, user) : (int)Status.Invalid;
        }
        catch (Exception e)
        {
            FutureExportDiagnostics.OnContainedException(e);
            return (int)Status.Panic;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int VtCancel(ulong handle)
    {
        try
        {
            ThrowIfFaultInjected();
            return Resolve(handle) is { } future ? future.Cancel() : (int)Status.Invalid;
        }
        catch (Exception e)
        {
            FutureExportDiagnostics.OnContainedException(e);
            return (int)Status.Panic;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int VtRelease(ulong handle)
    {
        try
        {
            ThrowIfFaultInjected();
            if (PortTable.Remove(handle, PortTable.FutureTag) is not ExportedFuture future) return (int)Status.Invalid;
            future.Release();
            return (int)Status.Ok;
        }
        catch (Exception e)
        {
            FutureExportDiagnostics.OnContainedException(e);
            return (int)Status.Panic;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ThrowIfFaultInjected()
    {
        if (t_faultOnNextCall) ThrowInjectedFault();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowInjectedFault()
    {
        t_faultOnNextCall = false;
        throw new InvalidOperationException("Injected fault (expected by the test).");
    }
}
