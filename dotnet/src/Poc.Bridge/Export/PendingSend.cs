using Poc.Bridge.Interop;

namespace Poc.Bridge.Export;

/// <summary>A send waiting for room: its message (already copied out of the importer's view) and
/// its <c>poc_send_complete_fn</c>.</summary>
internal sealed unsafe class PendingSend : PendingOp
{
    private readonly delegate* unmanaged<void*, int, void> _onComplete;

    internal PendingSend(ulong id, ulong port, Message message, delegate* unmanaged<void*, int, void> onComplete, void* user)
        : base(id, port, user)
    {
        Message = message;
        _onComplete = onComplete;
    }

    /// <summary>The message to enqueue when room appears. Cleared once it left the op (enqueued or
    /// dropped), so a completed op does not keep the payload alive.</summary>
    internal Message Message { get; set; }

    /// <inheritdoc/>
    public override void Execute() => _onComplete(User, Status);
}
