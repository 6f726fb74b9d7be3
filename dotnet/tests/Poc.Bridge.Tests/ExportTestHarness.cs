using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Poc.Bridge.Interop;
using Xunit;
using Xunit.Sdk;

namespace Poc.Bridge.Tests;

/// <summary>
/// Records what happened to one op issued through a raw vtable: how often its completion and its
/// deliver function ran, with which status and message, on which kind of thread. Named to the
/// exporter by an id in <c>user</c> (never a GCHandle), so a late duplicate completion is counted
/// as stray instead of touching freed state.
/// </summary>
internal sealed class OpRecorder
{
    private static readonly ConcurrentDictionary<nint, OpRecorder> s_live = new();
    private static long s_nextId;
    private static int s_stray;
    private static readonly ConcurrentQueue<string> s_failures = new();

    private readonly TaskCompletionSource<int> _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _completions;
    private int _delivers;

    public OpRecorder()
    {
        Id = (nint)Interlocked.Increment(ref s_nextId);
        s_live[Id] = this;
    }

    /// <summary>The value passed as <c>user</c>.</summary>
    public nint Id { get; }

    public unsafe void* User => (void*)Id;

    /// <summary>Times the completion function ran (must end at 0 for an OK fast path, 1 after PENDING).</summary>
    public int Completions => Volatile.Read(ref _completions);

    /// <summary>Times the deliver function ran (1 for a fast-path receive, else 0).</summary>
    public int Delivers => Volatile.Read(ref _delivers);

    /// <summary>Status of the (first) completion.</summary>
    public int Status { get; private set; } = -1;

    /// <summary>The message handed over by deliver or by an OK completion (a copy).</summary>
    public Message? Received { get; private set; }

    /// <summary>The completion ran on the thread that was inside a vtable call (forbidden).</summary>
    public bool RanInline { get; private set; }

    /// <summary>The completion ran on a thread-pool thread.</summary>
    public bool RanOnThreadPool { get; private set; }

    /// <summary>Runs inside the completion callback (re-entrancy tests), after recording.</summary>
    public Action<OpRecorder>? OnComplete { get; init; }

    /// <summary>Runs inside the deliver callback (re-entrancy tests), after recording.</summary>
    public Action<OpRecorder>? OnDeliver { get; init; }

    public Task<int> Completed => _completed.Task;

    /// <summary>Waits (bounded) for the completion and returns its status.</summary>
    public async Task<int> WaitAsync(string what)
    {
        try
        {
            return await _completed.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            throw new XunitException($"{what}: the completion callback did not run within 30 s.");
        }
    }

    /// <summary>Completions that reached no live recorder (a duplicate after the test ended).</summary>
    public static int Stray => Volatile.Read(ref s_stray);

    /// <summary>Fails the test if any callback saw something wrong (exceptions in callbacks are
    /// recorded here: an [UnmanagedCallersOnly] method must not throw).</summary>
    public static void AssertNoFailures()
    {
        Assert.True(s_failures.IsEmpty, string.Join(Environment.NewLine, s_failures));
        Assert.Equal(0, Stray);
    }

    /// <summary>Stops tracking this recorder; later completions count as stray.</summary>
    public void Forget() => s_live.TryRemove(Id, out _);

    internal static OpRecorder? Find(nint id)
    {
        if (s_live.TryGetValue(id, out OpRecorder? r)) return r;
        Interlocked.Increment(ref s_stray);
        return null;
    }

    internal static void Fail(string what) => s_failures.Enqueue(what);

    internal void RecordCompletion(int status, Message? msg, bool inline)
    {
        int n = Interlocked.Increment(ref _completions);
        if (n != 1)
        {
            Fail($"op {Id}: completion ran {n} times (status {status})");
            return;
        }
        Status = status;
        Received = msg;
        RanInline = inline;
        RanOnThreadPool = Thread.CurrentThread.IsThreadPoolThread;
        OnComplete?.Invoke(this);
        _completed.TrySetResult(status);
    }

    internal void RecordDelivery(int status, Message? msg)
    {
        int n = Interlocked.Increment(ref _delivers);
        if (n != 1) Fail($"op {Id}: deliver ran {n} times");
        if (status != (int)Bridge.Status.Ok || msg is null) Fail($"op {Id}: deliver with status {status}, message {msg is not null}");
        Received = msg;
        OnDeliver?.Invoke(this);
    }
}

/// <summary>The [UnmanagedCallersOnly] callbacks the raw tests hand to exporters.</summary>
internal static unsafe class TestCallbacks
{
    [ThreadStatic] private static int t_insideCall;

    public static delegate* unmanaged<void*, int, void> SendComplete => &OnSendComplete;
    public static delegate* unmanaged<void*, int, poc_message_view*, void> RecvComplete => &OnRecvComplete;
    public static delegate* unmanaged<void*, int, poc_message_view*, void> Deliver => &OnDeliver;
    public static delegate* unmanaged<void*, int, poc_message_view*, void> CountingDeliver => &OnCountingDeliver;

    /// <summary>Messages <see cref="CountingDeliver"/> saw on this thread.</summary>
    [ThreadStatic] public static long t_delivered;

    [UnmanagedCallersOnly]
    private static void OnCountingDeliver(void* user, int status, poc_message_view* msg) => t_delivered++;

    /// <summary>Marks the current thread as being inside a vtable call, so a completion that runs
    /// inline is detected.</summary>
    public static CallScope EnterCall()
    {
        t_insideCall++;
        return default;
    }

    public readonly struct CallScope : IDisposable
    {
        public void Dispose() => t_insideCall--;
    }

    public static Message Copy(poc_message_view* view) =>
        new(view->id, view->len == 0 ? Array.Empty<byte>() : new ReadOnlySpan<byte>(view->data, checked((int)view->len)).ToArray());

    [UnmanagedCallersOnly]
    private static void OnSendComplete(void* user, int status)
    {
        try
        {
            OpRecorder.Find((nint)user)?.RecordCompletion(status, null, t_insideCall != 0);
        }
        catch (Exception e)
        {
            OpRecorder.Fail($"send completion threw: {e}");
        }
    }

    [UnmanagedCallersOnly]
    private static void OnRecvComplete(void* user, int status, poc_message_view* msg)
    {
        try
        {
            if ((status == (int)Status.Ok) != (msg != null)) OpRecorder.Fail($"recv completion: status {status} with msg {(nint)msg}");
            Message? m = msg != null ? Copy(msg) : null;
            OpRecorder.Find((nint)user)?.RecordCompletion(status, m, t_insideCall != 0);
        }
        catch (Exception e)
        {
            OpRecorder.Fail($"recv completion threw: {e}");
        }
    }

    [UnmanagedCallersOnly]
    private static void OnDeliver(void* user, int status, poc_message_view* msg)
    {
        try
        {
            // deliver is synchronous: it must run inside the call that was given it.
            if (t_insideCall == 0) OpRecorder.Fail("deliver ran outside the call that was given it");
            OpRecorder.Find((nint)user)?.RecordDelivery(status, msg != null ? Copy(msg) : null);
        }
        catch (Exception e)
        {
            OpRecorder.Fail($"deliver threw: {e}");
        }
    }
}

/// <summary>A sender port driven through its raw vtable, as C++ or Rust would.</summary>
internal readonly unsafe struct RawSender(poc_sender port)
{
    public poc_sender Port => port;
    public ulong Handle => port.handle;
    public uint AbiVersion => port.vtable->abi_version;
    public uint VTableSize => port.vtable->size;
    public nint VTable => (nint)port.vtable;

    /// <summary>try_send of a view built from raw parts (NULL data, lengths that lie).</summary>
    public int TrySendView(ulong id, nint data, nuint len)
    {
        var view = new poc_message_view { id = id, data = (byte*)data, len = len };
        using var _ = TestCallbacks.EnterCall();
        return port.vtable->try_send(port.handle, &view);
    }

    public int TrySend(ulong id, ReadOnlySpan<byte> payload = default)
    {
        fixed (byte* data = payload)
        {
            var view = new poc_message_view { id = id, data = data, len = (nuint)payload.Length };
            using var _ = TestCallbacks.EnterCall();
            return port.vtable->try_send(port.handle, &view);
        }
    }

    public int Send(ulong id, OpRecorder rec, out ulong op, ReadOnlySpan<byte> payload = default)
    {
        fixed (byte* data = payload)
        {
            var view = new poc_message_view { id = id, data = data, len = (nuint)payload.Length };
            ulong o = 0;
            using var _ = TestCallbacks.EnterCall();
            int status = port.vtable->send(port.handle, &view, TestCallbacks.SendComplete, rec.User, &o);
            op = o;
            return status;
        }
    }

    public int SendRaw(poc_message_view* view, delegate* unmanaged<void*, int, void> onComplete, void* user, ulong* op)
    {
        using var _ = TestCallbacks.EnterCall();
        return port.vtable->send(port.handle, view, onComplete, user, op);
    }

    public int Cancel(ulong op)
    {
        using var _ = TestCallbacks.EnterCall();
        return port.vtable->cancel(port.handle, op);
    }

    public int Close()
    {
        using var _ = TestCallbacks.EnterCall();
        return port.vtable->close(port.handle);
    }

    public int Clone(out RawSender clone)
    {
        poc_sender c = default;
        int status;
        using (TestCallbacks.EnterCall()) status = port.vtable->clone(port.handle, &c);
        clone = new RawSender(c);
        return status;
    }

    public int Release()
    {
        using var _ = TestCallbacks.EnterCall();
        return port.vtable->release(port.handle);
    }

    /// <summary>The same vtable with another handle (forged, stale, foreign).</summary>
    public RawSender WithHandle(ulong handle) => new(new poc_sender { handle = handle, vtable = port.vtable });
}

/// <summary>A receiver port driven through its raw vtable.</summary>
internal readonly unsafe struct RawReceiver(poc_receiver port)
{
    public poc_receiver Port => port;
    public ulong Handle => port.handle;
    public uint AbiVersion => port.vtable->abi_version;
    public uint VTableSize => port.vtable->size;
    public nint VTable => (nint)port.vtable;

    public int TryRecv(OpRecorder rec)
    {
        using var _ = TestCallbacks.EnterCall();
        return port.vtable->try_recv(port.handle, TestCallbacks.Deliver, rec.User);
    }

    public int Recv(OpRecorder rec, out ulong op)
    {
        ulong o = 0;
        int status;
        using (TestCallbacks.EnterCall())
            status = port.vtable->recv(port.handle, TestCallbacks.Deliver, TestCallbacks.RecvComplete, rec.User, &o);
        op = o;
        return status;
    }

    public int RecvRaw(delegate* unmanaged<void*, int, poc_message_view*, void> deliver,
        delegate* unmanaged<void*, int, poc_message_view*, void> onComplete, void* user, ulong* op)
    {
        using var _ = TestCallbacks.EnterCall();
        return port.vtable->recv(port.handle, deliver, onComplete, user, op);
    }

    public int Cancel(ulong op)
    {
        using var _ = TestCallbacks.EnterCall();
        return port.vtable->cancel(port.handle, op);
    }

    public int Close()
    {
        using var _ = TestCallbacks.EnterCall();
        return port.vtable->close(port.handle);
    }

    public int Release()
    {
        using var _ = TestCallbacks.EnterCall();
        return port.vtable->release(port.handle);
    }

    /// <summary>try_recv with a deliver function that only counts (allocation tests).</summary>
    public int TryRecvCounting() => port.vtable->try_recv(port.handle, TestCallbacks.CountingDeliver, null);

    public RawReceiver WithHandle(ulong handle) => new(new poc_receiver { handle = handle, vtable = port.vtable });
}

/// <summary>A runtime for a synchronous test (one that needs pointers, which async methods cannot
/// take): shuts the runtime down on Dispose.</summary>
internal sealed class RuntimeScope : IDisposable
{
    public DotNetRuntime Runtime { get; } = new();

    public void Dispose()
    {
        if (!Runtime.ShutdownAsync().AsTask().Wait(TimeSpan.FromSeconds(30)))
            throw new XunitException("The runtime did not shut down within 30 s.");
    }
}

/// <summary>Helpers shared by the exporter tests.</summary>
internal static class ExportTestHarness
{
    /// <summary>A .NET-exported channel as raw ports (ownership taken from the wrappers).</summary>
    public static (RawSender Tx, RawReceiver Rx) CreateRaw(DotNetRuntime rt, int capacity, int maxPayload = 0)
    {
        (SenderPort tx, ReceiverPort rx) = rt.CreateChannel(capacity, maxPayload);
        return (new RawSender(tx.TakeOwnership()), new RawReceiver(rx.TakeOwnership()));
    }

    /// <summary>Payload of <paramref name="length"/> bytes following the producer pattern.</summary>
    public static byte[] Pattern(ulong id, int length)
    {
        var bytes = new byte[length];
        MessageChecksum.FillPattern(id, bytes);
        return bytes;
    }

    /// <summary>Bounded wait for a task, failing with <paramref name="what"/>.</summary>
    public static async Task<T> Within<T>(this Task<T> task, string what, int seconds = 30)
    {
        try
        {
            return await task.WaitAsync(TimeSpan.FromSeconds(seconds));
        }
        catch (TimeoutException)
        {
            throw new XunitException($"{what}: did not happen within {seconds} s.");
        }
    }

    /// <summary>Bounded wait for a task, failing with <paramref name="what"/>.</summary>
    public static async Task Within(this Task task, string what, int seconds = 30)
    {
        try
        {
            await task.WaitAsync(TimeSpan.FromSeconds(seconds));
        }
        catch (TimeoutException)
        {
            throw new XunitException($"{what}: did not happen within {seconds} s.");
        }
    }

    /// <summary>Sends and, if PENDING, awaits the completion; returns the final status.</summary>
    public static async Task<int> SendAndWaitAsync(RawSender tx, ulong id, byte[]? payload = null)
    {
        var rec = new OpRecorder();
        try
        {
            int status = tx.Send(id, rec, out _, payload);
            if (status != (int)Status.Pending) return status;
            return await rec.WaitAsync($"send {id}");
        }
        finally
        {
            rec.Forget();
        }
    }

    /// <summary>Receives and, if PENDING, awaits the completion; returns status and message.</summary>
    public static async Task<(int Status, Message? Message)> RecvAndWaitAsync(RawReceiver rx)
    {
        var rec = new OpRecorder();
        try
        {
            int status = rx.Recv(rec, out _);
            if (status == (int)Status.Ok) return (status, rec.Received);
            if (status != (int)Status.Pending) return (status, null);
            status = await rec.WaitAsync("recv");
            return (status, rec.Received);
        }
        finally
        {
            rec.Forget();
        }
    }

    public static string Name(int status) => ((Status)status).ToString();
}

/// <summary>One runtime of each kind, shared by the cross-runtime tests of a class (C++ and Rust
/// with two threads each: enough to interleave, modest on a small machine).</summary>
public sealed class BridgeRuntimesFixture : IAsyncLifetime
{
    public CppRuntime Cpp { get; } = new(2);
    public RustRuntime Rust { get; } = new(2);
    public DotNetRuntime DotNet { get; } = new();

    /// <summary>The runtime named "C++", "Rust" or ".NET".</summary>
    public IBridgeRuntime this[string name] => name switch
    {
        "C++" => Cpp,
        "Rust" => Rust,
        ".NET" => DotNet,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "not a runtime"),
    };

    public static readonly string[] Names = ["C++", "Rust", ".NET"];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await DotNet.DisposeAsync();
        await Cpp.DisposeAsync();
        await Rust.DisposeAsync();
    }
}
