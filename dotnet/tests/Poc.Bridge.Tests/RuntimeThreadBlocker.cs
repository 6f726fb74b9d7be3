using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Poc.Bridge.Interop;
using Xunit;

namespace Poc.Bridge.Tests;

/// <summary>
/// Occupies a thread of a native runtime under the test's control, so that a one-thread runtime can
/// do nothing else until the test lets it go: a consumer agent of that runtime is started on a
/// receiver port whose vtable is written here, and the port's <c>recv</c> (called by the agent on
/// the runtime's thread) blocks until <see cref="Release"/>, then answers <c>POC_CLOSED</c>, so the
/// agent ends normally (report OK, no messages) and releases the port.
/// </summary>
/// <remarks>
/// Blocking inside <c>recv</c> breaks bridge.h rule 1 on purpose: it is what makes the runtime's
/// thread unavailable. The block is bounded by <see cref="ImportTestSupport.Limit"/> (a failing
/// test cannot hang the runtime for ever), and <see cref="Dispose"/> lets the thread go, so that
/// the runtime's shutdown never waits for it.
/// </remarks>
internal sealed class RuntimeThreadBlocker : IDisposable
{
    private static readonly ConcurrentDictionary<ulong, RuntimeThreadBlocker> s_ports = new();
    private static readonly unsafe poc_receiver_vtable* s_vtable = CreateVTable();
    private static long s_nextHandle = 0xB10C_0000;
    private static long s_strayCalls;

    private readonly ulong _handle = (ulong)Interlocked.Increment(ref s_nextHandle);
    private readonly TaskCompletionSource<int> _blocked = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ManualResetEventSlim _release = new(false);
    private Task<AgentReport> _agent = Task.FromException<AgentReport>(new InvalidOperationException("not started"));
    private int _recvs;
    private int _releases;
    private int _timedOut;

    private RuntimeThreadBlocker()
    {
        s_ports[_handle] = this;
    }

    /// <summary>The managed id of the runtime thread that is (or was) blocked.</summary>
    public int ThreadId => _blocked.Task.IsCompletedSuccessfully ? _blocked.Task.Result : 0;

    /// <summary>Calls of the fake port's functions with a handle no blocker owns (must stay 0).</summary>
    public static long StrayCalls => Interlocked.Read(ref s_strayCalls);

    /// <summary>Starts a consumer agent of <paramref name="runtime"/> on the blocking port and
    /// returns once the agent's <c>recv</c> blocks one of the runtime's threads (bounded wait).</summary>
    public static async Task<RuntimeThreadBlocker> BlockAsync(IBridgeRuntime runtime)
    {
        var blocker = new RuntimeThreadBlocker();
        ReceiverPort port = CreatePort(blocker._handle);
        try
        {
            blocker._agent = runtime.RunConsumerAsync(port);
        }
        catch
        {
            port.Dispose(); // not taken by the agent: ours to release
            s_ports.TryRemove(blocker._handle, out _);
            throw;
        }
        Task first = await Task.WhenAny(blocker._blocked.Task, blocker._agent).Within($"the {runtime.Name} runtime's thread to block");
        if (first != blocker._blocked.Task)
            Assert.Fail($"the blocking agent of the {runtime.Name} runtime ended before it blocked: {await blocker._agent}");
        return blocker;
    }

    /// <summary>Lets the blocked thread go (idempotent).</summary>
    public void Release() => _release.Set();

    /// <summary>Lets the thread go and awaits the agent's end: it must have ended normally with no
    /// message, after exactly one <c>recv</c> (the blocking one) and exactly one <c>release</c>.</summary>
    public async Task FinishAsync()
    {
        Release();
        AgentReport report = await _agent.Within("the blocking agent's end");
        Assert.Equal(Status.Ok, report.Status);
        Assert.Equal(0UL, report.Messages);
        Assert.Equal(0, Volatile.Read(ref _timedOut));
        Assert.Equal(1, Volatile.Read(ref _recvs));
        Assert.Equal(1, Volatile.Read(ref _releases));
        s_ports.TryRemove(_handle, out _);
    }

    /// <summary>Lets the thread go (the agent then ends on its own).</summary>
    public void Dispose() => Release();

    private static unsafe ReceiverPort CreatePort(ulong handle) => new(new poc_receiver { handle = handle, vtable = s_vtable });

    private static unsafe poc_receiver_vtable* CreateVTable()
    {
        // Static and never freed, as bridge.h wants vtables to be.
        var vtable = (poc_receiver_vtable*)NativeMemory.AllocZeroed((nuint)sizeof(poc_receiver_vtable));
        vtable->abi_version = NativeMethods.AbiVersion;
        vtable->size = (uint)sizeof(poc_receiver_vtable);
        vtable->try_recv = (delegate* unmanaged<ulong, delegate* unmanaged<void*, int, poc_message_view*, void>, void*, int>)
            (delegate* unmanaged[Cdecl]<ulong, delegate* unmanaged<void*, int, poc_message_view*, void>, void*, int>)&TryRecv;
        vtable->recv = (delegate* unmanaged<ulong, delegate* unmanaged<void*, int, poc_message_view*, void>,
                delegate* unmanaged<void*, int, poc_message_view*, void>, void*, ulong*, int>)
            (delegate* unmanaged[Cdecl]<ulong, delegate* unmanaged<void*, int, poc_message_view*, void>,
                delegate* unmanaged<void*, int, poc_message_view*, void>, void*, ulong*, int>)&Recv;
        vtable->cancel = (delegate* unmanaged<ulong, ulong, int>)(delegate* unmanaged[Cdecl]<ulong, ulong, int>)&Cancel;
        vtable->close = (delegate* unmanaged<ulong, int>)(delegate* unmanaged[Cdecl]<ulong, int>)&Close;
        vtable->release = (delegate* unmanaged<ulong, int>)(delegate* unmanaged[Cdecl]<ulong, int>)&ReleasePort;
        return vtable;
    }

    private static RuntimeThreadBlocker? Find(ulong handle)
    {
        if (s_ports.TryGetValue(handle, out RuntimeThreadBlocker? blocker)) return blocker;
        Interlocked.Increment(ref s_strayCalls);
        return null;
    }

    /// <summary>Blocks the calling thread (the agent's: a thread of its runtime) until released,
    /// then answers CLOSED (closed and drained: the consumer ends normally).</summary>
    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static unsafe int Recv(ulong handle, delegate* unmanaged<void*, int, poc_message_view*, void> deliver,
        delegate* unmanaged<void*, int, poc_message_view*, void> onComplete, void* user, ulong* op)
    {
        try
        {
            RuntimeThreadBlocker? blocker = Find(handle);
            if (blocker is null) return (int)Status.Invalid;
            Interlocked.Increment(ref blocker._recvs);
            blocker._blocked.TrySetResult(Environment.CurrentManagedThreadId);
            if (!blocker._release.Wait(ImportTestSupport.Limit)) Volatile.Write(ref blocker._timedOut, 1);
            return (int)Status.Closed;
        }
        catch
        {
            return (int)Status.Panic; // nothing may unwind into native code
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static unsafe int TryRecv(ulong handle, delegate* unmanaged<void*, int, poc_message_view*, void> deliver, void* user) =>
        Find(handle) is null ? (int)Status.Invalid : (int)Status.Empty;

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int Cancel(ulong handle, ulong op) => Find(handle) is null ? (int)Status.Invalid : (int)Status.Ok;

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int Close(ulong handle) => Find(handle) is null ? (int)Status.Invalid : (int)Status.Ok;

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ReleasePort(ulong handle)
    {
        RuntimeThreadBlocker? blocker = Find(handle);
        if (blocker is null) return (int)Status.Invalid;
        return Interlocked.Increment(ref blocker._releases) == 1 ? (int)Status.Ok : (int)Status.Invalid;
    }
}
