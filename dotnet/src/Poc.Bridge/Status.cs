namespace Poc.Bridge;

/// <summary>
/// The outcome of a bridge operation: bridge.h <c>poc_status</c>. Surfaced to .NET callers inside
/// <see cref="InteropException"/>; the adapters turn the other statuses into the exceptions a .NET
/// developer expects (<c>ChannelClosedException</c>, <c>OperationCanceledException</c>,
/// <c>ArgumentException</c>).
/// </summary>
public enum Status
{
    /// <summary>Done now.</summary>
    Ok = 0,
    /// <summary>Will complete later, exactly once.</summary>
    Pending = 1,
    /// <summary>try-send only: the channel is at capacity.</summary>
    Full = 2,
    /// <summary>try-receive only: nothing is queued.</summary>
    Empty = 3,
    /// <summary>The channel is closed for this operation.</summary>
    Closed = 4,
    /// <summary>The operation was cancelled before it had any effect.</summary>
    Cancelled = 5,
    /// <summary>The owning runtime is shutting down or has shut down.</summary>
    Shutdown = 6,
    /// <summary>An async call failed with an application error.</summary>
    Error = 7,
    /// <summary>Misuse: bad handle, null pointer, oversized payload, wrong state.</summary>
    Invalid = 8,
    /// <summary>The callee's code failed and the failure was contained.</summary>
    Panic = 9,
}
