using System.Runtime.InteropServices;
using Poc.Bridge.Interop;

namespace Poc.Bridge.Import;

/// <summary>
/// The sender port owned by a <see cref="PortChannelWriter"/>, as a <see cref="SafeHandle"/>: every
/// native call holds a reference (DangerousAddRef/Release), and the port is released exactly once,
/// when the handle has been disposed and no call is inside it any more — or by the finalizer if the
/// writer was dropped without being completed (the port is then given back, which closes the
/// channel if it was the last sender).
/// </summary>
internal sealed unsafe class ImportedSenderHandle : SafeHandle
{
    internal ImportedSenderHandle(poc_sender port) : base(0, ownsHandle: true)
    {
        Vtable = port.vtable;
        SetHandle(unchecked((nint)port.handle));
    }

    /// <summary>The exporter's vtable (static, checked by <see cref="SenderPort"/>).</summary>
    internal poc_sender_vtable* Vtable { get; }

    /// <summary>The port's 64-bit handle.</summary>
    internal ulong Port => unchecked((ulong)handle);

    /// <inheritdoc/>
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc/>
    protected override bool ReleaseHandle()
    {
        // INVALID here means the exporter no longer knows the port (forged or released elsewhere):
        // nothing is left to give back.
        Vtable->release(Port);
        return true;
    }
}
