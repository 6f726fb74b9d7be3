using Poc.Bridge.Interop;

namespace Poc.Bridge.Export;

/// <summary>A send waiting for room: its message (already copied out of the importer's view) and
/// its <c>poc_send_complete_fn</c>. Reused by its channel (see <see cref="PendingOp"/>).</summary>
internal sealed unsafe class PendingSend(ExportChannel home) : PendingOp(home)
{
    private delegate* unmanaged<void*, int, void> _onComplete;

    /// <summary>Starts the op for a new pending send (under the channel's lock).</summary>
    internal PendingSend Start(ulong id, ulong port, Message message, delegate* unmanaged<void*, int, void> onComplete, void* user)
    {
        Start(id, port, user);
        Message = message;
        _onComplete = onComplete;
        return this;
    }

    /// <summary>The message to enqueue when room appears. Cleared once it left the op (enqueued or
    /// dropped), so a completed op does not keep the payload alive.</summary>
    internal Message Message { get; set; }

    /// <inheritdoc/>
    public override void Execute()
    {
        // Copy out, hand the op back, then call (see PendingReceive.Execute).
        var onComplete = _onComplete;
        void* user = User;
        int status = Status;
        Message = default;
        Home.Recycle(this);
        onComplete(user, status);
    }
}
