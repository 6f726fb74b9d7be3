using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using Poc.Bridge.Interop;

namespace Poc.Bridge.Import;

/// <summary>
/// One <c>recv</c>/<c>try_recv</c> of a <see cref="PortChannelReader"/>: the <c>user</c> of the port
/// call, filled by <see cref="OnDeliver"/> (synchronous fast path, borrows the op) or completed by
/// <see cref="OnComplete"/> (after PENDING, takes the op over); pooled (protocol at the top of
/// PortOperation.cs). Serves <c>ReadAsync</c> (the message is the result) and
/// <c>WaitToReadAsync</c> (the message goes to the reader's stash, the result is true).
/// </summary>
/// <remarks>
/// Rule 5 lives in <see cref="Complete"/>: when a read's token fired before the completion
/// arrived, a message it still brings goes to the stash and the read ends cancelled. The decision
/// is taken once, by the completion, so the message is either returned or stashed — never both,
/// never neither — whatever the order of "token fired", "exporter completed" and "awaiter resumed".
/// </remarks>
internal sealed unsafe class ReceiveOperation : PortOperation, IValueTaskSource<Message>, IValueTaskSource<bool>
{
    private static readonly Action<object?> s_onCancel = static state => ((ReceiveOperation)state!).RequestCancel();

    private ManualResetValueTaskSourceCore<int> _core = new() { RunContinuationsAsynchronously = true };
    private PortChannelReader? _reader;
    private CancellationToken _cancellationToken;
    private CancellationTokenRegistration _registration;
    private Message _message;     // what deliver or the completion copied out
    private bool _hasMessage;
    private bool _waitOnly;       // WaitToReadAsync: the message goes to the stash
    private ulong _opId;
    private int _cancelRequested; // 1 once the token fired while the op was pending

    /// <summary>The deliver function handed to every <c>recv</c>/<c>try_recv</c>.</summary>
    internal static delegate* unmanaged<void*, int, poc_message_view*, void> DeliverFunction =>
        (delegate* unmanaged<void*, int, poc_message_view*, void>)(delegate* unmanaged[Cdecl]<void*, int, poc_message_view*, void>)&OnDeliver;

    /// <summary>The completion function handed to every <c>recv</c>.</summary>
    internal static delegate* unmanaged<void*, int, poc_message_view*, void> CompleteFunction =>
        (delegate* unmanaged<void*, int, poc_message_view*, void>)(delegate* unmanaged[Cdecl]<void*, int, poc_message_view*, void>)&OnComplete;

    /// <summary>Prepares the op for one port call and arms it; returns the <c>user</c> token.</summary>
    internal void* Start(PortChannelReader reader, bool waitOnly, CancellationToken cancellationToken)
    {
        _reader = reader;
        _waitOnly = waitOnly;
        _cancellationToken = cancellationToken;
        return Arm();
    }

    /// <summary>recv returned PENDING with op id <paramref name="opId"/>: registers the token; the
    /// caller hands out a ValueTask with <see cref="Version"/>.</summary>
    internal void Pending(ulong opId)
    {
        _opId = opId;
        ImportDiagnostics.OnPending();
        if (_cancellationToken.CanBeCanceled)
            _registration = _cancellationToken.UnsafeRegister(s_onCancel, this);
    }

    /// <summary>The token of the ValueTask for the current use.</summary>
    internal short Version => _core.Version;

    /// <summary>The call returned without PENDING: takes what deliver copied (if anything), and
    /// puts the op back in the pool. Returns the status, <see cref="Status.Panic"/> for an OK
    /// without a delivered message (an exporter breaking the contract).</summary>
    internal int Finish(int status, out Message message)
    {
        Disarm();
        message = _message;
        if (status == (int)Status.Ok && !_hasMessage) status = (int)Status.Panic;
        _message = default;
        _hasMessage = false;
        _reader = null;
        _cancellationToken = default;
        OperationPool<ReceiveOperation>.Return(this);
        return status;
    }

    /// <inheritdoc/>
    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    /// <inheritdoc/>
    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    /// <summary>ReadAsync's result: the message, or the exception for the status.</summary>
    Message IValueTaskSource<Message>.GetResult(short token)
    {
        int status = Consume(token, out PortChannelReader reader, out Message message, out bool cancelRequested,
            out CancellationToken cancellationToken);
        if (status == (int)Status.Ok) return message;
        // Closed while another (cancelled) read stashed a message: that message is still ours to give.
        if (status == (int)Status.Closed && !cancelRequested && reader.TryTakeStashed(out message)) return message;
        throw reader.ReceiveFailure(status, cancelRequested, cancellationToken);
    }

    /// <summary>WaitToReadAsync's result: true when a message waits in the stash, false at the end.</summary>
    bool IValueTaskSource<bool>.GetResult(short token)
    {
        int status = Consume(token, out PortChannelReader reader, out _, out bool cancelRequested,
            out CancellationToken cancellationToken);
        if (status == (int)Status.Ok) return true;
        if (!cancelRequested && status == (int)Status.Closed) return reader.HasStashed;
        throw reader.ReceiveFailure(status, cancelRequested, cancellationToken);
    }

    /// <summary>Reads the outcome and recycles the op.</summary>
    private int Consume(short token, out PortChannelReader reader, out Message message, out bool cancelRequested,
        out CancellationToken cancellationToken)
    {
        int status = _core.GetResult(token); // throws for a stale token: the ValueTask was consumed already
        reader = _reader!;
        message = _message;
        cancelRequested = Volatile.Read(ref _cancelRequested) != 0;
        cancellationToken = _cancellationToken;

        // Dispose waits for a cancellation callback that is running right now; after it, nothing
        // refers to this op any more and it can be reused.
        _registration.Dispose();
        _registration = default;
        _reader = null;
        _message = default;
        _hasMessage = false;
        _cancellationToken = default;
        _cancelRequested = 0;
        _opId = 0;
        _core.Reset();
        OperationPool<ReceiveOperation>.Return(this);
        return status;
    }

    /// <summary>The token fired: ask the port to cancel (a request; the completion still comes).</summary>
    private void RequestCancel()
    {
        // Set before cancel: the completion it provokes must see it.
        Volatile.Write(ref _cancelRequested, 1);
        _reader!.CancelPortOp(_opId);
    }

    /// <summary>Runs on the completion's thread with the op taken over; completes the core last.</summary>
    private void Complete(int status, poc_message_view* view)
    {
        PortChannelReader reader = _reader!;
        try
        {
            if (status == (int)Status.Ok)
            {
                if (view is null)
                {
                    status = (int)Status.Panic; // OK without a message: the exporter broke the contract
                }
                else
                {
                    Message message = Copy(view);
                    if (_waitOnly)
                    {
                        reader.Stash(message);
                    }
                    else if (Volatile.Read(ref _cancelRequested) != 0)
                    {
                        reader.Stash(message); // rule 5: kept for the next read
                        ImportDiagnostics.OnKeptAfterCancel();
                        status = (int)Status.Cancelled;
                    }
                    else
                    {
                        _message = message;
                        _hasMessage = true;
                    }
                }
            }
            else
            {
                reader.OnStatusSeen(status);
            }
        }
        catch (Exception e)
        {
            ImportDiagnostics.OnContainedException(e); // e.g. out of memory copying the payload
            status = (int)Status.Panic;
        }
        // Last touch of the op: from here on GetResult may run and recycle it.
        _core.SetResult(status);
    }

    /// <summary>Copies a borrowed view into a <see cref="Message"/> (no allocation for an empty payload).</summary>
    private static Message Copy(poc_message_view* view)
    {
        if (view->len == 0) return new Message(view->id);
        if (view->len > int.MaxValue || view->data is null)
            throw new InvalidOperationException("The exporter delivered a view with a length but no data, or over 2 GiB.");
        return new Message(view->id, new ReadOnlySpan<byte>(view->data, (int)view->len).ToArray());
    }

    /// <summary>bridge.h <c>poc_recv_complete_fn</c> as the deliver function: synchronous, on the
    /// calling thread, inside recv/try_recv; borrows the op (it stays armed).</summary>
    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnDeliver(void* user, int status, poc_message_view* view)
    {
        try
        {
            ReceiveOperation? op = OperationTable<ReceiveOperation>.Find(user, out _);
            if (op is null)
            {
                ImportDiagnostics.OnStrayCallback();
                return;
            }
            if (status != (int)Status.Ok || view is null) return; // Finish reports the missing message
            op._message = Copy(view);
            op._hasMessage = true;
        }
        catch (Exception e)
        {
            ImportDiagnostics.OnContainedException(e); // Finish reports PANIC: no message was kept
        }
    }

    /// <summary>bridge.h <c>poc_recv_complete_fn</c> as the completion: exactly once after PENDING,
    /// on an exporter thread, never under an exporter lock; takes the op over.</summary>
    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnComplete(void* user, int status, poc_message_view* view)
    {
        try
        {
            ReceiveOperation? op = OperationTable<ReceiveOperation>.Find(user, out ulong token);
            if (op is null || !op.TryDisarm(token))
            {
                ImportDiagnostics.OnStrayCallback();
                return;
            }
            ImportDiagnostics.OnMatchedCompletion();
            op.Complete(status, view);
        }
        catch (Exception e)
        {
            ImportDiagnostics.OnContainedException(e); // a throwing continuation (SynchronizationContext.Post)
        }
    }
}
