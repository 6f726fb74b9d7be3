using System.Runtime.InteropServices;

namespace Poc.Bridge.Native;

/// <summary>
/// A <c>poc_cpp_runtime*</c> / <c>poc_rust_runtime*</c> as a <see cref="SafeHandle"/>: every call
/// holds a reference, and <c>poc_*_runtime_free</c> runs exactly once, after disposal, when no call
/// is inside the runtime any more (a token's cancellation callback may be calling
/// <c>agent_cancel</c> at that moment), or from the finalizer if the runtime was never disposed.
/// </summary>
/// <remarks>free must not run on one of the runtime's own threads. It runs on the thread that drops
/// the last reference: the disposing thread, a thread that was inside a call — never a runtime
/// thread, because .NET code reaches the runtime only from .NET threads (agent done callbacks do
/// not touch this handle).</remarks>
internal sealed unsafe class NativeRuntimeHandle : SafeHandle
{
    private readonly NativeRuntimeApi _api;

    internal NativeRuntimeHandle(nint runtime, NativeRuntimeApi api) : base(0, ownsHandle: true)
    {
        _api = api;
        SetHandle(runtime);
    }

    /// <inheritdoc/>
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc/>
    protected override bool ReleaseHandle()
    {
        _api.RuntimeFree(handle); // shuts down first if needed; ports handed out stay safe to release
        return true;
    }
}
