using System.Diagnostics;
using System.Threading.Channels;
using Poc.Bridge.Interop;

namespace Poc.Bridge.Export;

/// <summary>
/// One exported channel: a bounded <see cref="Channel{T}"/> of <see cref="Message"/> plus the
/// bookkeeping bridge.h needs and the channel does not provide (op ids, exact cancellation by id,
/// close from either side, completion of pending ops on close, release and shutdown).
/// </summary>
/// <remarks>
/// <para>Who does what:</para>
/// <list type="bullet">
/// <item><b>The <see cref="Channel{T}"/></b> (bounded, <see cref="BoundedChannelFullMode.Wait"/>) holds
/// the buffer of <c>capacity</c> messages. It is only ever used through <c>TryWrite</c> /
/// <c>TryRead</c>, under <see cref="_lock"/>: its own async waiters are never used.</item>
/// <item><b>This class</b> keeps the two FIFOs of waiting ops: <see cref="_sends"/> (sends waiting
/// for room, each holding its copied message) and <see cref="_receives"/> (receives waiting for a
/// message). Invariants, kept because every enqueue and dequeue holds <see cref="_lock"/>:
/// <see cref="_sends"/> is non-empty only while the buffer is full, and <see cref="_receives"/> is
/// non-empty only while the buffer is empty and no send waits.</item>
/// <item><b>Moving messages.</b> A send that finds a waiting receive hands its message straight to
/// the oldest one. A receive that takes a message from a full buffer moves the oldest waiting
/// send's message into the freed slot and completes that send with OK. Both happen under the lock,
/// together with unlinking the op they complete.</item>
/// <item><b>Why not WriteAsync/ReadAsync with a CancellationToken</b>: a cancelled WriteAsync may
/// still have written, and a cancelled ReadAsync may already have taken a message, so
/// "CANCELLED means it had no effect" (bridge.h rule 5) could not be exact. Here cancel unlinks the
/// op under the same lock that serves it: an op that cancel finds had no effect and completes
/// CANCELLED; one it does not find was already served and completes with its real outcome.</item>
/// <item><b>Close.</b> <see cref="_sendersClosed"/> / <see cref="_receiverClosed"/> are read under the
/// lock that every enqueue holds, so "senders closed and the buffer empty" is final and a receive
/// can report CLOSED. The channel's writer is completed too, but the flags are the authority.</item>
/// <item><b>Completions</b> are collected in a <see cref="CompletionBatch"/> under the lock and queued to
/// the thread pool after it is released: exactly once, on a thread-pool thread, never under our
/// lock, never inline in the importer's call. A synchronous <c>deliver</c> runs on the caller's
/// thread after the lock is released, with the payload pinned for the call.</item>
/// </list>
/// <para>Allocations per message: the copy of the importer's payload (one <c>byte[]</c>, none for an
/// empty payload). A pending op takes this channel's spare <see cref="PendingOp"/> of its kind
/// (also its work item; handed back when it completes), or a new one when the spare is in use
/// (several ops pending at once). The Channel's buffer does not allocate per item.</para>
/// <para>Lock order: <see cref="_lock"/> is a leaf (the bounded Channel's internal lock is taken
/// inside it and never calls out, since it has no waiters). Nothing else runs while it is held.</para>
/// <para>Thread safety: every member may be called concurrently from any thread.</para>
/// </remarks>
internal sealed unsafe class ExportChannel
{
    private readonly ExportScope _scope;
    private readonly int _maxPayload;
    private readonly Channel<Message> _channel;
    private readonly Lock _lock = new();
    private readonly PendingOpList _sends = new();    // oldest first; non-empty only while the buffer is full
    private readonly PendingOpList _receives = new(); // oldest first; non-empty only while the buffer is empty
    private ulong _nextOpId = 1;                       // 0 is "no op"; never reused
    // One completed op of each kind, kept for the next pending op (PendingOp: reuse). Taken under
    // _lock, given back from the op's Execute without it: hence Interlocked.
    private PendingSend? _spareSend;
    private PendingReceive? _spareReceive;
    private int _opsMade;

    /// <summary>How many op objects this channel has made (the rest of its pending ops reused a spare).</summary>
    internal int OpsMade => Volatile.Read(ref _opsMade);
    private int _senderPorts = 1;                      // live sender ports
    private bool _receiverReleased;
    private bool _sendersClosed;                       // a sender closed, or the last one was released
    private bool _receiverClosed;                      // the receiver closed or was released

    /// <summary>A channel of <paramref name="capacity"/> (&gt;= 1) messages of at most
    /// <paramref name="maxPayload"/> bytes, owned by <paramref name="scope"/>.</summary>
    internal ExportChannel(ExportScope scope, int capacity, int maxPayload)
    {
        Debug.Assert(capacity >= 1 && maxPayload >= 0);
        _scope = scope;
        _maxPayload = maxPayload;
        _channel = Channel.CreateBounded<Message>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            // Every call on it is made under _lock: one reader and one writer at a time.
            SingleReader = true,
            SingleWriter = true,
            AllowSynchronousContinuations = false,
        });
    }

    // ---- sender ports -----------------------------------------------------------------------------

    /// <summary>bridge.h <c>try_send</c> through sender port <paramref name="port"/>.</summary>
    internal int TrySend(ExportSenderPort port, poc_message_view* msg)
    {
        if (!TryCopy(msg, out Message m)) return (int)Status.Invalid;
        var done = new CompletionBatch();
        int status;
        lock (_lock)
        {
            status = SendGateLocked(port);
            if (status == (int)Status.Ok && !EnqueueLocked(m, ref done)) status = (int)Status.Full;
        }
        done.Dispatch();
        return status;
    }

    /// <summary>bridge.h <c>send</c> through sender port <paramref name="port"/> (handle <paramref name="handle"/>).</summary>
    internal int Send(ExportSenderPort port, ulong handle, poc_message_view* msg,
        delegate* unmanaged<void*, int, void> onComplete, void* user, ulong* opOut)
    {
        if (onComplete == null || opOut == null || !TryCopy(msg, out Message m)) return (int)Status.Invalid;
        var done = new CompletionBatch();
        int status;
        lock (_lock)
        {
            status = SendGateLocked(port);
            if (status == (int)Status.Ok && !EnqueueLocked(m, ref done))
            {
                // Full (and, by the invariant, no receive waits): wait behind earlier sends (FIFO).
                var op = (Interlocked.Exchange(ref _spareSend, null) ?? NewOp(new PendingSend(this)))
                    .Start(_nextOpId++, handle, m, onComplete, user);
                *opOut = op.Id; // before the op can complete: completing it needs _lock
                _sends.Add(op);
                status = (int)Status.Pending;
            }
        }
        done.Dispatch();
        return status;
    }

    /// <summary>bridge.h sender <c>close</c>: closes the channel for every sender. Idempotent.</summary>
    internal int CloseSenders(ExportSenderPort port)
    {
        var done = new CompletionBatch();
        lock (_lock)
        {
            if (port.Released) return (int)Status.Invalid;
            if (_scope.IsStopping) return (int)Status.Shutdown;
            CloseSendersLocked(ref done);
        }
        done.Dispatch();
        return (int)Status.Ok;
    }

    /// <summary>Counts one more sender port (clone); the caller registers its handle.</summary>
    internal int AddSender(ExportSenderPort port)
    {
        lock (_lock)
        {
            if (port.Released) return (int)Status.Invalid;
            if (_scope.IsStopping) return (int)Status.Shutdown;
            _senderPorts++;
            return (int)Status.Ok;
        }
    }

    /// <summary>The sender port <paramref name="port"/> (handle <paramref name="handle"/>, already
    /// unregistered) is released: its pending sends complete CANCELLED (nothing of theirs was
    /// enqueued); the last sender closes the channel. Valid after shutdown.</summary>
    internal void ReleaseSender(ExportSenderPort port, ulong handle)
    {
        var done = new CompletionBatch();
        bool forget;
        lock (_lock)
        {
            // Set under the lock that every op of the port takes, so no op of this port can be
            // registered after its pending ones were cancelled here.
            port.Released = true;
            for (PendingOp? op = _sends.Head; op is not null;)
            {
                PendingOp? next = op.Next;
                if (op.Port == handle) CompleteSendLocked(op, UnlessStopping(Status.Cancelled), ref done);
                op = next;
            }
            if (--_senderPorts == 0) CloseSendersLocked(ref done);
            forget = _senderPorts == 0 && _receiverReleased;
        }
        done.Dispatch();
        if (forget) _scope.Forget(this);
    }

    // ---- the receiver port ------------------------------------------------------------------------

    /// <summary>bridge.h <c>try_recv</c>: <paramref name="deliver"/> runs after the lock is released.</summary>
    internal int TryRecv(delegate* unmanaged<void*, int, poc_message_view*, void> deliver, void* user)
    {
        if (deliver == null) return (int)Status.Invalid;
        var done = new CompletionBatch();
        Message m;
        lock (_lock)
        {
            if (_scope.IsStopping) return (int)Status.Shutdown;
            if (_receiverClosed) return (int)Status.Closed;
            if (!_receives.IsEmpty) return (int)Status.Empty; // pending receives go first
            // Both facts are read under the lock that every enqueue and close holds: "closed and
            // nothing queued" cannot be undone by a racing send.
            if (!TakeLocked(out m, ref done)) return _sendersClosed ? (int)Status.Closed : (int)Status.Empty;
        }
        done.Dispatch();
        Deliver(deliver, user, m); // synchronously, with no lock held (re-entrancy)
        return (int)Status.Ok;
    }

    /// <summary>bridge.h <c>recv</c> through the receiver port (handle <paramref name="handle"/>).</summary>
    internal int Recv(ulong handle, delegate* unmanaged<void*, int, poc_message_view*, void> deliver,
        delegate* unmanaged<void*, int, poc_message_view*, void> onComplete, void* user, ulong* opOut)
    {
        if (deliver == null || onComplete == null || opOut == null) return (int)Status.Invalid;
        var done = new CompletionBatch();
        Message m;
        lock (_lock)
        {
            if (_scope.IsStopping) return (int)Status.Shutdown;
            if (_receiverClosed) return (int)Status.Closed;
            if (!_receives.IsEmpty || !TakeLocked(out m, ref done))
            {
                if (_sendersClosed) return (int)Status.Closed; // closed and drained (see TryRecv)
                // Nothing queued: wait behind earlier receives (issue order).
                var op = (Interlocked.Exchange(ref _spareReceive, null) ?? NewOp(new PendingReceive(this)))
                    .Start(_nextOpId++, handle, onComplete, user);
                *opOut = op.Id; // before the op can complete: completing it needs _lock
                _receives.Add(op);
                return (int)Status.Pending;
            }
        }
        done.Dispatch();
        Deliver(deliver, user, m);
        return (int)Status.Ok;
    }

    /// <summary>bridge.h receiver <c>close</c>. Idempotent.</summary>
    internal int CloseReceiver()
    {
        var done = new CompletionBatch();
        lock (_lock)
        {
            if (_scope.IsStopping) return (int)Status.Shutdown;
            CloseReceiverLocked(ref done);
        }
        done.Dispatch();
        return (int)Status.Ok;
    }

    /// <summary>The receiver port was released (handle already unregistered): as
    /// <see cref="CloseReceiver"/>, also after shutdown.</summary>
    internal void ReleaseReceiver()
    {
        var done = new CompletionBatch();
        bool forget;
        lock (_lock)
        {
            _receiverReleased = true;
            CloseReceiverLocked(ref done);
            forget = _senderPorts == 0;
        }
        done.Dispatch();
        if (forget) _scope.Forget(this);
    }

    // ---- both ---------------------------------------------------------------------------------------

    /// <summary>bridge.h <c>cancel</c> of a sender port: a request; OK also for an unknown or
    /// finished op.</summary>
    internal int CancelSend(ExportSenderPort port, ulong handle, ulong id)
    {
        var done = new CompletionBatch();
        lock (_lock)
        {
            if (port.Released) return (int)Status.Invalid;
            if (_scope.IsStopping) return (int)Status.Shutdown;
            // Found: still waiting for room, so nothing was enqueued. Not found: it completed
            // already (or its completion is queued) with its real outcome, or never existed.
            if (_sends.Find(id, handle) is { } op) CompleteSendLocked(op, Status.Cancelled, ref done);
        }
        done.Dispatch();
        return (int)Status.Ok;
    }

    /// <summary>bridge.h <c>cancel</c> of the receiver port.</summary>
    internal int CancelRecv(ulong handle, ulong id)
    {
        var done = new CompletionBatch();
        lock (_lock)
        {
            if (_scope.IsStopping) return (int)Status.Shutdown;
            // Found: still waiting, so nothing was dequeued for it.
            if (_receives.Find(id, handle) is { } op)
            {
                _receives.Remove(op);
                done.Add(op, Status.Cancelled);
            }
        }
        done.Dispatch();
        return (int)Status.Ok;
    }

    // ---- the runtime --------------------------------------------------------------------------------

    /// <summary>Completes every pending op with <paramref name="reason"/> (shutdown step 2). The
    /// scope is already marked stopping, so no new op can be registered after this.</summary>
    internal void CompletePending(Status reason)
    {
        var done = new CompletionBatch();
        lock (_lock) CompleteAllLocked(reason, ref done);
        done.Dispatch();
    }

    // ---- helpers ------------------------------------------------------------------------------------

    /// <summary>Hands <paramref name="m"/> to an importer's deliver or completion function, pinned
    /// for the call (the view is borrowed). No lock may be held.</summary>
    internal static void Deliver(delegate* unmanaged<void*, int, poc_message_view*, void> fn, void* user, in Message m)
    {
        ReadOnlySpan<byte> payload = m.Payload.Span;
        fixed (byte* data = payload)
        {
            var view = new poc_message_view { id = m.Id, data = data, len = (nuint)payload.Length };
            fn(user, (int)Status.Ok, &view);
        }
    }

    /// <summary>Checks an importer's view and copies it (the view is borrowed for the call only).
    /// False for NULL, a NULL payload with a length, or a payload over the limit.</summary>
    private bool TryCopy(poc_message_view* msg, out Message m)
    {
        m = default;
        if (msg == null) return false;
        nuint len = msg->len;
        if (len > (nuint)_maxPayload || (msg->data == null && len != 0)) return false;
        if (len == 0)
        {
            m = new Message(msg->id, Array.Empty<byte>());
            return true;
        }
        byte[] copy = GC.AllocateUninitializedArray<byte>((int)len);
        new ReadOnlySpan<byte>(msg->data, (int)len).CopyTo(copy);
        m = new Message(msg->id, copy);
        return true;
    }

    /// <summary>OK when a send through <paramref name="port"/> may enqueue, else the status to return.</summary>
    private int SendGateLocked(ExportSenderPort port)
    {
        // A port released while another thread was inside a call on it (misuse, bridge.h): the
        // call fails instead of registering an op that the release could no longer cancel.
        if (port.Released) return (int)Status.Invalid;
        if (_scope.IsStopping) return (int)Status.Shutdown;
        if (_sendersClosed || _receiverClosed) return (int)Status.Closed;
        return (int)Status.Ok;
    }

    private T NewOp<T>(T op) where T : PendingOp
    {
        Interlocked.Increment(ref _opsMade);
        return op;
    }

    /// <summary>Keeps a completed op as the spare of its kind (called by its Execute, no lock held;
    /// when a spare is already kept, the op is left to the GC).</summary>
    internal void Recycle(PendingSend op) => Interlocked.CompareExchange(ref _spareSend, op, null);

    /// <inheritdoc cref="Recycle(PendingSend)"/>
    internal void Recycle(PendingReceive op) => Interlocked.CompareExchange(ref _spareReceive, op, null);

    /// <summary>Enqueues <paramref name="m"/> if there is room: to the oldest waiting receive, else into
    /// the buffer. False when full (nothing happened).</summary>
    private bool EnqueueLocked(in Message m, ref CompletionBatch done)
    {
        // A waiting receive means an empty buffer and no waiting send (invariant): hand the message
        // to the oldest receive; nothing can be overtaken.
        if (_receives.Head is PendingReceive recv)
        {
            _receives.Remove(recv);
            recv.Message = m;
            done.Add(recv, Status.Ok);
            return true;
        }
        // Sends that wait go first (they wait only while the buffer is full, so TryWrite would fail
        // anyway; the check keeps FIFO order obvious).
        return _sends.IsEmpty && _channel.Writer.TryWrite(m);
    }

    /// <summary>Takes the oldest buffered message, and lets the oldest waiting send into the slot
    /// it freed. False when nothing is buffered.</summary>
    private bool TakeLocked(out Message m, ref CompletionBatch done)
    {
        if (!_channel.Reader.TryRead(out m)) return false;
        if (_sends.Head is PendingSend send)
        {
            bool written = _channel.Writer.TryWrite(send.Message);
            Debug.Assert(written, "a slot was just freed under the lock");
            CompleteSendLocked(send, written ? Status.Ok : Status.Panic, ref done);
        }
        return true;
    }

    private void CompleteSendLocked(PendingOp op, Status status, ref CompletionBatch done)
    {
        _sends.Remove(op);
        ((PendingSend)op).Message = default; // enqueued or dropped: the op no longer holds it
        done.Add(op, status);
    }

    private void CompleteAllLocked(Status reason, ref CompletionBatch done)
    {
        while (_sends.Head is { } send) CompleteSendLocked(send, reason, ref done);
        while (_receives.Head is { } recv)
        {
            _receives.Remove(recv);
            done.Add(recv, reason);
        }
    }

    /// <summary><see cref="Status.Shutdown"/> once the runtime is stopping, else
    /// <paramref name="status"/>: for ops completed by a close or release.</summary>
    /// <remarks>Shutdown step 2 (docs/contract.md): an op pending when the runtime began to stop
    /// completes with SHUTDOWN. The shutdown sweep completes the channels one after another, so a
    /// release on a channel not swept yet must not complete its pending ops with CLOSED or
    /// CANCELLED first (found by scripts/stress, phase shutdown-load).</remarks>
    private Status UnlessStopping(Status status) => _scope.IsStopping ? Status.Shutdown : status;

    private void CloseSendersLocked(ref CompletionBatch done)
    {
        if (_sendersClosed) return;
        _sendersClosed = true;
        _channel.Writer.TryComplete(); // what is buffered stays readable
        // Waiting sends had no effect: CLOSED. Waiting receives imply an empty buffer, and nothing
        // can be enqueued any more: CLOSED too.
        CompleteAllLocked(UnlessStopping(Status.Closed), ref done);
    }

    private void CloseReceiverLocked(ref CompletionBatch done)
    {
        if (_receiverClosed) return;
        _receiverClosed = true;
        _channel.Writer.TryComplete();
        CompleteAllLocked(UnlessStopping(Status.Closed), ref done);
        while (_channel.Reader.TryRead(out _)) { } // drop what is queued
    }
}
