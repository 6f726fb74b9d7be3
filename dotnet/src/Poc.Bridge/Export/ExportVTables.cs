using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Poc.Bridge.Interop;
// bridge.h poc_send_complete_fn and poc_recv_complete_fn, as NativeMethods declares them.
using unsafe SendCompleteFn = delegate* unmanaged<void*, int, void>;
using unsafe RecvCompleteFn = delegate* unmanaged<void*, int, Poc.Bridge.Interop.poc_message_view*, void>;

namespace Poc.Bridge.Export;

/// <summary>
/// The static vtables of every port .NET exports, and the <c>[UnmanagedCallersOnly]</c> functions
/// they point to. C++, Rust (and .NET's own import adapters) call them like any other exporter's.
/// </summary>
/// <remarks>
/// <para>The two tables are allocated once in native memory and never freed: a port may be called
/// or released from any thread at any time, including after its runtime was disposed.</para>
/// <para>Every function (bridge.h "Ports"):</para>
/// <list type="bullet">
/// <item>resolves the handle first through <see cref="PortTable"/> — 0, stale, released, forged,
/// foreign or wrong-kind → INVALID, never a crash;</item>
/// <item>checks its pointers (INVALID for NULL) and, for sends, the payload (INVALID over the
/// channel's limit), then copies the view before returning;</item>
/// <item>never blocks and never waits for another thread; completions run exactly once on the
/// thread pool, never under a lock of ours, never inline; a synchronous <c>deliver</c> runs on the
/// calling thread with no lock of ours held (<see cref="ExportChannel"/>);</item>
/// <item>catches every exception and answers PANIC: no .NET exception unwinds into native code
/// (bridge.h rule 9).</item>
/// </list>
/// The handoff steps are in docs/contract.md ("Send", "Receive", "Cancel", "Close and release",
/// "Shutdown").
/// </remarks>
internal static unsafe class ExportVTables
{
    /// <summary>The vtable of every exported sender port.</summary>
    internal static readonly poc_sender_vtable* Sender = CreateSenderVTable();

    /// <summary>The vtable of every exported receiver port.</summary>
    internal static readonly poc_receiver_vtable* Receiver = CreateReceiverVTable();

    /// <summary>Tests: makes the next exported call on this thread throw inside its guard, to check
    /// that the exception is contained and reported as PANIC.</summary>
    [ThreadStatic] internal static bool t_faultOnNextCall;

    // The functions are [UnmanagedCallersOnly] with CallConvCdecl, the C calling convention of
    // bridge.h, so &Function is a delegate* unmanaged[Cdecl]. NativeMethods declares the vtable
    // fields with the platform default convention, which is cdecl on every 64-bit platform .NET
    // runs on, hence the (no-op) casts from one to the other.
    private static poc_sender_vtable* CreateSenderVTable()
    {
        var vt = (poc_sender_vtable*)NativeMemory.AllocZeroed((nuint)sizeof(poc_sender_vtable));
        vt->abi_version = NativeMethods.AbiVersion;
        vt->size = (uint)sizeof(poc_sender_vtable);
        vt->try_send = (delegate* unmanaged<ulong, poc_message_view*, int>)
            (delegate* unmanaged[Cdecl]<ulong, poc_message_view*, int>)&SenderTrySend;
        vt->send = (delegate* unmanaged<ulong, poc_message_view*, SendCompleteFn, void*, ulong*, int>)
            (delegate* unmanaged[Cdecl]<ulong, poc_message_view*, SendCompleteFn, void*, ulong*, int>)&SenderSend;
        vt->cancel = (delegate* unmanaged<ulong, ulong, int>)(delegate* unmanaged[Cdecl]<ulong, ulong, int>)&SenderCancel;
        vt->close = (delegate* unmanaged<ulong, int>)(delegate* unmanaged[Cdecl]<ulong, int>)&SenderClose;
        vt->clone = (delegate* unmanaged<ulong, poc_sender*, int>)(delegate* unmanaged[Cdecl]<ulong, poc_sender*, int>)&SenderClone;
        vt->release = (delegate* unmanaged<ulong, int>)(delegate* unmanaged[Cdecl]<ulong, int>)&SenderRelease;
        return vt;
    }

    private static poc_receiver_vtable* CreateReceiverVTable()
    {
        var vt = (poc_receiver_vtable*)NativeMemory.AllocZeroed((nuint)sizeof(poc_receiver_vtable));
        vt->abi_version = NativeMethods.AbiVersion;
        vt->size = (uint)sizeof(poc_receiver_vtable);
        vt->try_recv = (delegate* unmanaged<ulong, RecvCompleteFn, void*, int>)
            (delegate* unmanaged[Cdecl]<ulong, RecvCompleteFn, void*, int>)&ReceiverTryRecv;
        vt->recv = (delegate* unmanaged<ulong, RecvCompleteFn, RecvCompleteFn, void*, ulong*, int>)
            (delegate* unmanaged[Cdecl]<ulong, RecvCompleteFn, RecvCompleteFn, void*, ulong*, int>)&ReceiverRecv;
        vt->cancel = (delegate* unmanaged<ulong, ulong, int>)(delegate* unmanaged[Cdecl]<ulong, ulong, int>)&ReceiverCancel;
        vt->close = (delegate* unmanaged<ulong, int>)(delegate* unmanaged[Cdecl]<ulong, int>)&ReceiverClose;
        vt->release = (delegate* unmanaged<ulong, int>)(delegate* unmanaged[Cdecl]<ulong, int>)&ReceiverRelease;
        return vt;
    }

    // ---- sender vtable ---------------------------------------------------------------------------

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int SenderTrySend(ulong handle, poc_message_view* msg)
    {
        try
        {
            ThrowIfFaultInjected();
            return ResolveSender(handle) is { } port ? port.Channel.TrySend(port, msg) : (int)Status.Invalid;
        }
        catch (Exception)
        {
            return (int)Status.Panic;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int SenderSend(ulong handle, poc_message_view* msg, SendCompleteFn onComplete, void* user, ulong* op)
    {
        try
        {
            ThrowIfFaultInjected();
            return ResolveSender(handle) is { } port
                ? port.Channel.Send(port, handle, msg, onComplete, user, op)
                : (int)Status.Invalid;
        }
        catch (Exception)
        {
            return (int)Status.Panic;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int SenderCancel(ulong handle, ulong op)
    {
        try
        {
            ThrowIfFaultInjected();
            return ResolveSender(handle) is { } port ? port.Channel.CancelSend(port, handle, op) : (int)Status.Invalid;
        }
        catch (Exception)
        {
            return (int)Status.Panic;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int SenderClose(ulong handle)
    {
        try
        {
            ThrowIfFaultInjected();
            return ResolveSender(handle) is { } port ? port.Channel.CloseSenders(port) : (int)Status.Invalid;
        }
        catch (Exception)
        {
            return (int)Status.Panic;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int SenderClone(ulong handle, poc_sender* @out)
    {
        try
        {
            ThrowIfFaultInjected();
            if (ResolveSender(handle) is not { } port || @out == null) return (int)Status.Invalid;
            int status = port.Channel.AddSender(port);
            if (status != (int)Status.Ok) return status;
            var clone = new ExportSenderPort(port.Channel);
            ulong cloneHandle;
            try
            {
                cloneHandle = PortTable.Insert(PortTable.SenderTag, clone);
            }
            catch
            {
                port.Channel.ReleaseSender(clone, 0); // undo AddSender; no op carries handle 0
                throw;
            }
            *@out = new poc_sender { handle = cloneHandle, vtable = Sender };
            return (int)Status.Ok;
        }
        catch (Exception)
        {
            return (int)Status.Panic;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int SenderRelease(ulong handle)
    {
        try
        {
            ThrowIfFaultInjected();
            if (PortTable.Remove(handle, PortTable.SenderTag) is not ExportSenderPort port) return (int)Status.Invalid;
            port.Channel.ReleaseSender(port, handle);
            return (int)Status.Ok;
        }
        catch (Exception)
        {
            return (int)Status.Panic;
        }
    }

    // ---- receiver vtable -------------------------------------------------------------------------

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ReceiverTryRecv(ulong handle, RecvCompleteFn deliver, void* user)
    {
        try
        {
            ThrowIfFaultInjected();
            return ResolveReceiver(handle) is { } channel ? channel.TryRecv(deliver, user) : (int)Status.Invalid;
        }
        catch (Exception)
        {
            return (int)Status.Panic;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ReceiverRecv(ulong handle, RecvCompleteFn deliver, RecvCompleteFn onComplete, void* user, ulong* op)
    {
        try
        {
            ThrowIfFaultInjected();
            return ResolveReceiver(handle) is { } channel
                ? channel.Recv(handle, deliver, onComplete, user, op)
                : (int)Status.Invalid;
        }
        catch (Exception)
        {
            return (int)Status.Panic;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ReceiverCancel(ulong handle, ulong op)
    {
        try
        {
            ThrowIfFaultInjected();
            return ResolveReceiver(handle) is { } channel ? channel.CancelRecv(handle, op) : (int)Status.Invalid;
        }
        catch (Exception)
        {
            return (int)Status.Panic;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ReceiverClose(ulong handle)
    {
        try
        {
            ThrowIfFaultInjected();
            return ResolveReceiver(handle) is { } channel ? channel.CloseReceiver() : (int)Status.Invalid;
        }
        catch (Exception)
        {
            return (int)Status.Panic;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ReceiverRelease(ulong handle)
    {
        try
        {
            ThrowIfFaultInjected();
            if (PortTable.Remove(handle, PortTable.ReceiverTag) is not ExportChannel channel) return (int)Status.Invalid;
            channel.ReleaseReceiver();
            return (int)Status.Ok;
        }
        catch (Exception)
        {
            return (int)Status.Panic;
        }
    }

    // ---- helpers ---------------------------------------------------------------------------------

    private static ExportSenderPort? ResolveSender(ulong handle) =>
        PortTable.Resolve(handle, PortTable.SenderTag) as ExportSenderPort;

    private static ExportChannel? ResolveReceiver(ulong handle) =>
        PortTable.Resolve(handle, PortTable.ReceiverTag) as ExportChannel;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ThrowIfFaultInjected()
    {
        if (t_faultOnNextCall) ThrowInjectedFault();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowInjectedFault()
    {
        t_faultOnNextCall = false;
        throw new InvalidOperationException("Injected fault (expected by the test).");
    }
}
