using System.Runtime.InteropServices;
using Poc.Bridge.Interop;

namespace Poc.Bridge.Import;

/// <summary>
/// The receiver port owned by a <see cref="PortChannelReader"/>, as a <see cref="SafeHandle"/>:
/// every native call holds a reference, and the port is released exactly once, when the handle has
/// been disposed and no call is inside it any more — or by the finalizer if the reader was dropped
/// (releasing a receiver closes the channel).
/// </summary>
internal sealed unsafe class ImportedReceiverHandle : SafeHandle
{
    internal ImportedReceiverHandle(poc_receiver port) : base(0, ownsHandle: true)
    {
        Vtable = port.vtable;
        SetHandle(unchecked((nint)port.handle));
    }

    /// <summary>The exporter's vtable (static, checked by <see cref="ReceiverPort"/>).</summary>
    internal poc_receiver_vtable* Vtable { get; }

    /// <summary>The port's 64-bit handle.</summary>
    internal ulong Port => unchecked((ulong)handle);

    /// <inheritdoc/>
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc/>
    protected override bool ReleaseHandle()
    {
        Vtable->release(Port); // INVALID: a port the exporter no longer knows; nothing to give back
        return true;
    }
}
