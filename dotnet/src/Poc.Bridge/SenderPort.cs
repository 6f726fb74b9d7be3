using Poc.Bridge.Interop;

namespace Poc.Bridge;

/// <summary>
/// An owned sender port (bridge.h <c>poc_sender</c>) of a channel owned by any runtime. Hand it to
/// an agent (which takes ownership), turn it into a <c>ChannelWriter&lt;Message&gt;</c> with
/// <c>ToWriter()</c>, or dispose it: disposing releases the port exactly once, and releasing the
/// last sender of a channel closes it.
/// </summary>
/// <remarks>Thread safety: <see cref="Clone"/> and <see cref="Close"/> may be called concurrently;
/// ownership transfers (<c>ToWriter</c>, passing to an agent) and <see cref="Dispose"/> happen once.</remarks>
public sealed unsafe partial class SenderPort : IDisposable
{
    private readonly poc_sender _port;
    private int _owned = 1; // 1 while this object owns the port; 0 once released or handed over

    internal SenderPort(poc_sender port)
    {
        if (port.vtable == null || port.vtable->abi_version != NativeMethods.AbiVersion ||
            port.vtable->size < (uint)sizeof(poc_sender_vtable))
            throw new ArgumentException("The sender port's vtable is missing or of another ABI version.", nameof(port));
        _port = port;
    }

    /// <summary>True until the port was released or handed over.</summary>
    public bool IsOwned => Volatile.Read(ref _owned) == 1;

    /// <summary>The native handle, for diagnostics.</summary>
    public ulong Handle => _port.handle;

    /// <summary>Another sender port for the same channel, released separately.</summary>
    /// <exception cref="ObjectDisposedException">This port was released or handed over.</exception>
    public SenderPort Clone()
    {
        ThrowIfNotOwned();
        poc_sender clone;
        int status = _port.vtable->clone(_port.handle, &clone);
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "clone a sender port");
        return new SenderPort(clone);
    }

    /// <summary>Closes the channel for new sends from every sender; receivers drain what is queued.</summary>
    public void Close()
    {
        ThrowIfNotOwned();
        int status = _port.vtable->close(_port.handle);
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "close a sender port");
    }

    /// <summary>Releases the port (once; later calls do nothing).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _owned, 0) == 1) _port.vtable->release(_port.handle);
    }

    /// <summary>Hands the native port over to a new owner (an agent, an import adapter): this object
    /// no longer releases it.</summary>
    /// <exception cref="ObjectDisposedException">This port was released or handed over already.</exception>
    internal poc_sender TakeOwnership()
    {
        if (Interlocked.Exchange(ref _owned, 0) != 1) throw new ObjectDisposedException(nameof(SenderPort));
        return _port;
    }

    /// <summary>Takes the native port back after a hand-over that failed (an agent start that
    /// returned an error: bridge.h says the ports were not taken). Only the code that called
    /// <see cref="TakeOwnership"/> may call this, and only before anyone else could use the port.</summary>
    internal void ReturnOwnership() => Volatile.Write(ref _owned, 1);

    /// <summary>The native port, still owned by this object.</summary>
    internal poc_sender Native => _port;

    private void ThrowIfNotOwned() => ObjectDisposedException.ThrowIf(!IsOwned, this);
}
