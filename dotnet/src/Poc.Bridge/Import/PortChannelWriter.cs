using System.Threading.Channels;
using Poc.Bridge.Interop;

namespace Poc.Bridge.Import;

/// <summary>
/// A sender port of any runtime as a <see cref="ChannelWriter{T}"/> of <see cref="Message"/>: what
/// <see cref="SenderPort.ToWriter"/> returns.
/// </summary>
/// <remarks>
/// <para><c>WriteAsync</c> waits for room (backpressure: nothing is dropped). If its token fires
/// while it waits, it throws <see cref="OperationCanceledException"/> only when the message was not
/// enqueued; when the send won the race the write completes normally (the message is in the
/// channel — reporting it as cancelled would invite a duplicate).</para>
/// <para>Lifetime: the writer owns the port. <see cref="TryComplete"/> (also <c>Complete</c>)
/// closes the channel for new sends from <em>every</em> sender (bridge.h <c>close</c>), then
/// releases the port; pending writes fail with <see cref="ChannelClosedException"/>. The error
/// given to TryComplete is not transported: the bridge has no error channel, readers see CLOSED.
/// <see cref="Dispose"/> only releases the port (the channel closes when its last sender is
/// released; pending writes fail with <see cref="ObjectDisposedException"/>). A writer that is
/// garbage collected releases its port through the SafeHandle finalizer.</para>
/// <para><c>WaitToWriteAsync</c>: the bridge has no "wait for room" operation, so it answers true
/// while the channel is open, false once it is closed or this writer completed, and throws
/// <see cref="InteropException"/> after SHUTDOWN. Use <c>WriteAsync</c> to wait for room; a
/// <c>WaitToWriteAsync</c>/<c>TryWrite</c> loop would poll a full channel.</para>
/// <para>Errors: CLOSED → <see cref="ChannelClosedException"/> (false from TryWrite), INVALID
/// (oversized payload, stale port) → <see cref="ArgumentException"/>, SHUTDOWN and PANIC →
/// <see cref="InteropException"/> (SHUTDOWN: false from TryWrite).</para>
/// <para>Thread safety: every member may be called concurrently.</para>
/// </remarks>
internal sealed unsafe class PortChannelWriter : ChannelWriter<Message>, IDisposable
{
    private readonly ImportedSenderHandle _handle;
    private int _completed; // 1 once TryComplete or Dispose ran: no more writes through this writer
    private int _disposed;  // 1 after Dispose
    private int _seen;      // Status.Closed or Status.Shutdown once the port answered it; 0 before

    internal PortChannelWriter(poc_sender port) => _handle = new ImportedSenderHandle(port);

    /// <summary>Enqueues <paramref name="item"/> now if there is room; never waits.</summary>
    /// <returns>False when the channel is full or closed, its runtime shut down, or this writer completed.</returns>
    /// <exception cref="ArgumentException">INVALID: the payload is over the channel's limit, or the port is stale.</exception>
    /// <exception cref="InteropException">The exporter's code failed (PANIC).</exception>
    /// <exception cref="ObjectDisposedException">The writer was disposed.</exception>
    public override bool TryWrite(Message item)
    {
        ThrowIfDisposed();
        if (Volatile.Read(ref _completed) != 0 || !TryEnter()) return false;
        int status;
        try
        {
            ReadOnlySpan<byte> payload = item.Payload.Span;
            fixed (byte* data = payload) // pinned for the call only: the exporter copies before returning
            {
                poc_message_view view = new() { id = item.Id, data = data, len = (nuint)payload.Length };
                status = _handle.Vtable->try_send(_handle.Port, &view);
            }
        }
        finally
        {
            _handle.DangerousRelease();
        }
        switch ((Status)status)
        {
            case Status.Ok:
                return true;
            case Status.Full:
                return false;
            case Status.Closed:
            case Status.Shutdown:
                OnStatusSeen(status);
                return false;
            default:
                throw StatusErrors.ToException(status, $"write a message with a {item.Payload.Length}-byte payload");
        }
    }

    /// <summary>Enqueues <paramref name="item"/>, waiting for room.</summary>
    /// <exception cref="ChannelClosedException">The channel is closed, or this writer completed.</exception>
    /// <exception cref="OperationCanceledException">The token fired before the message was enqueued.</exception>
    /// <exception cref="ArgumentException">INVALID: the payload is over the channel's limit, or the port is stale.</exception>
    /// <exception cref="InteropException">The owning runtime shut down, or its code failed.</exception>
    public override ValueTask WriteAsync(Message item, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled(cancellationToken);
        if (Volatile.Read(ref _disposed) != 0) return ValueTask.FromException(Disposed());
        if (Volatile.Read(ref _completed) != 0 || !TryEnter()) return ValueTask.FromException(CompletedException());

        SendOperation op = OperationPool<SendOperation>.Rent();
        ulong opId = 0;
        int status;
        try
        {
            ReadOnlySpan<byte> payload = item.Payload.Span;
            fixed (byte* data = payload) // pinned for the call only: the exporter copies before returning
            {
                poc_message_view view = new() { id = item.Id, data = data, len = (nuint)payload.Length };
                status = _handle.Vtable->send(_handle.Port, &view, SendOperation.CompleteFunction,
                    op.Start(this, cancellationToken), &opId);
            }
        }
        finally
        {
            _handle.DangerousRelease();
        }
        if (status == (int)Status.Pending) return op.Pending(opId);
        op.Abandon();
        if (status == (int)Status.Ok) return default;
        OnStatusSeen(status);
        return ValueTask.FromException(SendFailure(status, false, cancellationToken, item.Payload.Length));
    }

    /// <summary>True while the channel is open (the bridge cannot wait for room: see the remarks);
    /// false once it is closed or this writer completed.</summary>
    /// <exception cref="InteropException">The owning runtime shut down.</exception>
    public override ValueTask<bool> WaitToWriteAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<bool>(cancellationToken);
        if (Volatile.Read(ref _disposed) != 0) return ValueTask.FromException<bool>(Disposed());
        if (Volatile.Read(ref _completed) != 0) return new ValueTask<bool>(false);
        return Volatile.Read(ref _seen) switch
        {
            (int)Status.Closed => new ValueTask<bool>(false),
            (int)Status.Shutdown => ValueTask.FromException<bool>(
                new InteropException(Status.Shutdown, "Could not write: the runtime that owns the channel shut down")),
            _ => new ValueTask<bool>(true),
        };
    }

    /// <summary>Closes the channel for new sends from every sender and releases the port; pending
    /// writes fail with <see cref="ChannelClosedException"/>. <paramref name="error"/> is not
    /// transported (readers see CLOSED). False when this writer was completed or disposed already.</summary>
    public override bool TryComplete(Exception? error = null)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0) return false;
        if (TryEnter())
        {
            try
            {
                _handle.Vtable->close(_handle.Port); // SHUTDOWN/INVALID: nothing left to close
            }
            finally
            {
                _handle.DangerousRelease();
            }
        }
        _handle.Dispose(); // the release waits for calls that are inside the port right now
        return true;
    }

    /// <summary>Releases the port without closing the channel for other senders (releasing the
    /// last sender closes it). Pending writes fail with <see cref="ObjectDisposedException"/>;
    /// later calls throw it. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Volatile.Write(ref _completed, 1);
        _handle.Dispose();
    }

    /// <summary>Records CLOSED or SHUTDOWN for <see cref="WaitToWriteAsync"/>.</summary>
    internal void OnStatusSeen(int status)
    {
        if (status is (int)Status.Closed or (int)Status.Shutdown) Volatile.Write(ref _seen, status);
    }

    /// <summary>Asks the port to cancel op <paramref name="opId"/> (from a token's callback).</summary>
    internal void CancelPortOp(ulong opId)
    {
        // A released port has completed (or is completing) its pending ops already.
        if (!TryEnter()) return;
        try
        {
            _handle.Vtable->cancel(_handle.Port, opId); // a request: the completion still comes, once
        }
        finally
        {
            _handle.DangerousRelease();
        }
    }

    /// <summary>The exception a write ends with for <paramref name="status"/>.</summary>
    internal Exception SendFailure(int status, bool cancelRequested, CancellationToken cancellationToken, int payloadLength = -1)
    {
        if (cancelRequested)
            return new OperationCanceledException("The write was cancelled; the message was not enqueued.", cancellationToken);
        // Releasing a sender port completes its pending sends with CANCELLED.
        if (status == (int)Status.Cancelled && Volatile.Read(ref _disposed) != 0) return Disposed();
        if (status == (int)Status.Closed)
            return new ChannelClosedException("The channel is closed for sends: the message was not enqueued.");
        return StatusErrors.ToException(status,
            payloadLength >= 0 ? $"write a message with a {payloadLength}-byte payload" : "write a message", cancellationToken);
    }

    private static ChannelClosedException CompletedException() =>
        new("The channel writer was completed: no more messages can be written through it.");

    private ObjectDisposedException Disposed() => new(GetType().Name, "The channel writer was disposed.");

    private void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0) throw Disposed();
    }

    private bool TryEnter()
    {
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            // Released by TryComplete or Dispose; the callers say which.
        }
        return added;
    }
}
