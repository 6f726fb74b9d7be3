using Poc.Bridge.Interop;

namespace Poc.Bridge.Export;

/// <summary>A receive waiting for a message: its <c>poc_recv_complete_fn</c>, and the message once a
/// send handed one over. Reused by its channel (see <see cref="PendingOp"/>).</summary>
internal sealed unsafe class PendingReceive(ExportChannel home) : PendingOp(home)
{
    private delegate* unmanaged<void*, int, poc_message_view*, void> _onComplete;

    /// <summary>Starts the op for a new pending receive (under the channel's lock).</summary>
    internal PendingReceive Start(ulong id, ulong port, delegate* unmanaged<void*, int, poc_message_view*, void> onComplete, void* user)
    {
        Start(id, port, user);
        _onComplete = onComplete;
        Message = default;
        return this;
    }

    /// <summary>The message this receive got (valid when <see cref="PendingOp.Status"/> is OK).</summary>
    internal Message Message { get; set; }

    /// <inheritdoc/>
    public override void Execute()
    {
        // Copy out, hand the op back, then call: the callback may issue the channel's next op,
        // which can then reuse this object.
        var onComplete = _onComplete;
        void* user = User;
        int status = Status;
        Message m = Message;
        Message = default;
        Home.Recycle(this);
        if (status == (int)Bridge.Status.Ok) ExportChannel.Deliver(onComplete, user, m);
        else onComplete(user, status, null);
    }
}
