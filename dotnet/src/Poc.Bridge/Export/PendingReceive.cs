using Poc.Bridge.Interop;

namespace Poc.Bridge.Export;

/// <summary>A receive waiting for a message: its <c>poc_recv_complete_fn</c>, and the message once a
/// send handed one over.</summary>
internal sealed unsafe class PendingReceive : PendingOp
{
    private readonly delegate* unmanaged<void*, int, poc_message_view*, void> _onComplete;

    internal PendingReceive(ulong id, ulong port, delegate* unmanaged<void*, int, poc_message_view*, void> onComplete, void* user)
        : base(id, port, user)
    {
        _onComplete = onComplete;
    }

    /// <summary>The message this receive got (valid when <see cref="PendingOp.Status"/> is OK).</summary>
    internal Message Message { get; set; }

    /// <inheritdoc/>
    public override void Execute()
    {
        if (Status == (int)Bridge.Status.Ok)
        {
            Message m = Message;
            Message = default;
            ExportChannel.Deliver(_onComplete, User, m);
        }
        else
        {
            _onComplete(User, Status, null);
        }
    }
}
