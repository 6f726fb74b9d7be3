using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Threading.Channels;
using Poc.Bridge.Interop;

namespace Poc.Bridge.Import;

/// <summary>
/// A receiver port of any runtime as a <see cref="ChannelReader{T}"/> of <see cref="Message"/>:
/// what <see cref="ReceiverPort.ToReader"/> returns. <c>await foreach (var m in
/// reader.ReadAllAsync(ct))</c> yields messages until the channel reports CLOSED.
/// </summary>
/// <remarks>
/// <para>Lifetime: the reader owns the port and releases it exactly once, as soon as one of these
/// happens: the port reports CLOSED (closed and drained — <c>ReadAllAsync</c> ends,
/// <c>ReadAsync</c> throws <see cref="ChannelClosedException"/>, <c>WaitToReadAsync</c> answers
/// false) or SHUTDOWN; <see cref="Dispose"/> is called (releasing a receiver closes the channel and
/// drops what is queued; pending reads then fail with <see cref="ObjectDisposedException"/>); or the
/// reader is garbage collected (the port's SafeHandle finalizer).
/// <see cref="Completion"/> completes when no message will come any more and the stash is empty:
/// successfully after CLOSED or Dispose, faulted with an <see cref="InteropException"/> after
/// SHUTDOWN.</para>
/// <para>Cancellation (rule 5): a cancelled <c>ReadAsync</c> throws
/// <see cref="OperationCanceledException"/> only after the port has finished the op; if the op won
/// the race and brought a message, the message is kept in the stash and the next read (any of
/// <c>ReadAsync</c>, <c>TryRead</c>, <c>WaitToReadAsync</c> + <c>TryRead</c>) returns it first.
/// <c>WaitToReadAsync</c> is a real receive whose message goes to the stash.</para>
/// <para>Errors: CLOSED → <see cref="ChannelClosedException"/> (false from the Try/Wait methods),
/// CANCELLED → <see cref="OperationCanceledException"/>, INVALID → <see cref="ArgumentException"/>,
/// SHUTDOWN and PANIC → <see cref="InteropException"/>.</para>
/// <para>Thread safety: every member may be called concurrently; concurrent reads are served in
/// the order the port received them.</para>
/// </remarks>
internal sealed unsafe class PortChannelReader : ChannelReader<Message>, IDisposable
{
    private const int Open = 0;
    private const int EndClosed = 1;
    private const int EndShutdown = 2;

    private readonly ImportedReceiverHandle _handle;
    private readonly ConcurrentQueue<Message> _stash = new(); // messages of cancelled reads and of WaitToReadAsync
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _end;      // Open until the port reports CLOSED or SHUTDOWN (then the port is released)
    private int _disposed; // 1 after Dispose

    internal PortChannelReader(poc_receiver port) => _handle = new ImportedReceiverHandle(port);

    /// <inheritdoc/>
    public override Task Completion => _completion.Task;

    /// <summary>Reads a message now if one is stashed or queued; never waits.</summary>
    /// <returns>False when nothing is queued, or when the channel is closed and drained or its
    /// runtime shut down (then <see cref="Completion"/> tells which).</returns>
    /// <exception cref="ArgumentException">The exporter answered INVALID (a stale or forged port).</exception>
    /// <exception cref="InteropException">The exporter's code failed (PANIC).</exception>
    /// <exception cref="ObjectDisposedException">The reader was disposed.</exception>
    public override bool TryRead([MaybeNullWhen(false)] out Message item)
    {
        ThrowIfDisposed();
        if (TryTakeStashed(out item)) return true;
        if (Volatile.Read(ref _end) != Open || !TryEnter())
        {
            ThrowIfDisposed();
            return false;
        }
        ReceiveOperation op = OperationPool<ReceiveOperation>.Rent();
        int status;
        try
        {
            status = _handle.Vtable->try_recv(_handle.Port, ReceiveOperation.DeliverFunction, op.Start(this, false, default));
        }
        finally
        {
            _handle.DangerousRelease();
        }
        status = op.Finish(status, out item);
        switch ((Status)status)
        {
            case Status.Ok:
                return true;
            case Status.Empty:
                return false;
            case Status.Closed:
            case Status.Shutdown:
                OnStatusSeen(status);
                return TryTakeStashed(out item);
            default:
                throw StatusErrors.ToException(status, "read a message");
        }
    }

    /// <summary>Reads a message, waiting for one (a stashed message comes first).</summary>
    /// <exception cref="ChannelClosedException">The channel is closed and drained.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired before a
    /// message was taken (one that arrived anyway is kept for the next read).</exception>
    /// <exception cref="InteropException">The owning runtime shut down, or its code failed.</exception>
    public override ValueTask<Message> ReadAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<Message>(cancellationToken);
        if (Volatile.Read(ref _disposed) != 0) return ValueTask.FromException<Message>(Disposed());
        if (TryTakeStashed(out Message item)) return new ValueTask<Message>(item);
        if (Volatile.Read(ref _end) != Open || !TryEnter()) return ValueTask.FromException<Message>(EndFailure());

        ReceiveOperation op = OperationPool<ReceiveOperation>.Rent();
        short version = op.Version;
        ulong opId = 0;
        int status;
        try
        {
            status = _handle.Vtable->recv(_handle.Port, ReceiveOperation.DeliverFunction, ReceiveOperation.CompleteFunction,
                op.Start(this, false, cancellationToken), &opId);
        }
        finally
        {
            _handle.DangerousRelease();
        }
        if (status == (int)Status.Pending)
        {
            op.Pending(opId);
            return new ValueTask<Message>(op, version);
        }
        status = op.Finish(status, out item);
        if (status == (int)Status.Ok) return new ValueTask<Message>(item);
        OnStatusSeen(status);
        if (status == (int)Status.Closed && TryTakeStashed(out item)) return new ValueTask<Message>(item);
        return ValueTask.FromException<Message>(ReceiveFailure(status, false, cancellationToken));
    }

    /// <summary>Waits until a message can be read: receives one into the stash, where the next
    /// <see cref="TryRead"/> finds it. False once the channel is closed and drained.</summary>
    public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<bool>(cancellationToken);
        if (Volatile.Read(ref _disposed) != 0) return ValueTask.FromException<bool>(Disposed());
        if (HasStashed) return new ValueTask<bool>(true);
        if (Volatile.Read(ref _end) != Open || !TryEnter())
        {
            if (Volatile.Read(ref _disposed) == 0 && Volatile.Read(ref _end) == EndClosed) return new ValueTask<bool>(HasStashed);
            return ValueTask.FromException<bool>(EndFailure());
        }

        ReceiveOperation op = OperationPool<ReceiveOperation>.Rent();
        short version = op.Version;
        ulong opId = 0;
        int status;
        try
        {
            status = _handle.Vtable->recv(_handle.Port, ReceiveOperation.DeliverFunction, ReceiveOperation.CompleteFunction,
                op.Start(this, true, cancellationToken), &opId);
        }
        finally
        {
            _handle.DangerousRelease();
        }
        if (status == (int)Status.Pending)
        {
            op.Pending(opId);
            return new ValueTask<bool>(op, version);
        }
        status = op.Finish(status, out Message item);
        if (status == (int)Status.Ok)
        {
            Stash(item);
            return new ValueTask<bool>(true);
        }
        OnStatusSeen(status);
        if (status == (int)Status.Closed) return new ValueTask<bool>(HasStashed);
        return ValueTask.FromException<bool>(ReceiveFailure(status, false, cancellationToken));
    }

    /// <summary>Releases the port (closing the channel from the receiving side: queued messages are
    /// dropped, senders get CLOSED) and drops the stash. Pending reads fail with
    /// <see cref="ObjectDisposedException"/>; later calls throw it. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _handle.Dispose(); // the release waits for calls that are inside the port right now
        _stash.Clear();
        _completion.TrySetResult();
    }

    /// <summary>True when a message waits in the stash.</summary>
    internal bool HasStashed => !_stash.IsEmpty;

    /// <summary>Keeps a message for the next read (a cancelled read's, or WaitToReadAsync's).</summary>
    internal void Stash(Message message) => _stash.Enqueue(message);

    /// <summary>Takes the oldest stashed message.</summary>
    internal bool TryTakeStashed(out Message message)
    {
        if (!_stash.TryDequeue(out message)) return false;
        if (Volatile.Read(ref _end) != Open) TryCompleteIfDrained();
        return true;
    }

    /// <summary>Records a terminal status (CLOSED, SHUTDOWN): the port is released and
    /// <see cref="Completion"/> completes once the stash is empty. Other statuses are not terminal.</summary>
    internal void OnStatusSeen(int status)
    {
        int end = status switch
        {
            (int)Status.Closed => EndClosed,
            (int)Status.Shutdown => EndShutdown,
            _ => Open,
        };
        if (end == Open) return;
        if (Interlocked.CompareExchange(ref _end, end, Open) == Open) _handle.Dispose();
        TryCompleteIfDrained();
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

    /// <summary>The exception a read ends with for <paramref name="status"/>.</summary>
    internal Exception ReceiveFailure(int status, bool cancelRequested, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _disposed) != 0 && status is (int)Status.Closed or (int)Status.Cancelled) return Disposed();
        if (cancelRequested)
            return new OperationCanceledException(
                "The read was cancelled; a message that arrived anyway is kept for the next read.", cancellationToken);
        if (status == (int)Status.Closed) return ClosedException();
        return StatusErrors.ToException(status, "read a message", cancellationToken);
    }

    private void TryCompleteIfDrained()
    {
        if (!_stash.IsEmpty) return;
        switch (Volatile.Read(ref _end))
        {
            case EndClosed:
                _completion.TrySetResult();
                break;
            case EndShutdown:
                _completion.TrySetException(ShutdownException());
                break;
        }
    }

    private Exception EndFailure() =>
        Volatile.Read(ref _disposed) != 0 ? Disposed()
        : Volatile.Read(ref _end) == EndShutdown ? ShutdownException()
        : ClosedException();

    private static ChannelClosedException ClosedException() =>
        new("The channel is closed and drained: no message will come any more.");

    private static InteropException ShutdownException() =>
        new(Status.Shutdown, "Could not read a message: the runtime that owns the channel shut down");

    private ObjectDisposedException Disposed() => new(GetType().Name, "The channel reader was disposed.");

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
            // Released: by Dispose, or after CLOSED/SHUTDOWN. The callers say which.
        }
        return added;
    }
}
