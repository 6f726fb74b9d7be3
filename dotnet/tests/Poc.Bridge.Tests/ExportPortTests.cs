using Poc.Bridge.Export;
using Poc.Bridge.Interop;
using System.Runtime.CompilerServices;
using Xunit;
using static Poc.Bridge.Tests.ExportTestHarness;

namespace Poc.Bridge.Tests;

/// <summary>
/// The .NET exporter through its raw vtables, as C++ or Rust see it: fast paths, pending ops,
/// exactly-once completions on the thread pool, FIFO order, re-entrant callbacks.
/// </summary>
public sealed class ExportPortTests
{
    [Fact]
    public async Task VTables_Headers_CarryAbiVersionAndSize()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        Assert.Equal(NativeMethods.AbiVersion, tx.AbiVersion);
        Assert.Equal((uint)Unsafe.SizeOf<poc_sender_vtable>(), tx.VTableSize);
        Assert.Equal(NativeMethods.AbiVersion, rx.AbiVersion);
        Assert.Equal((uint)Unsafe.SizeOf<poc_receiver_vtable>(), rx.VTableSize);
        Assert.Equal(SenderVTable(), tx.VTable); // every sender port shares one static vtable
        Assert.Equal(ReceiverVTable(), rx.VTable);
        Assert.Equal(PortTable.SenderTag, (byte)(tx.Handle >> 56));
        Assert.Equal(PortTable.ReceiverTag, (byte)(rx.Handle >> 56));
        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal((int)Status.Ok, rx.Release());
    }

    [Fact]
    public async Task TrySend_WithRoom_ReturnsOkAndTryRecvDeliversACopy()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 4);
        byte[] payload = Pattern(7, 100);
        Assert.Equal((int)Status.Ok, tx.TrySend(7, payload));
        Array.Clear(payload); // the exporter copied the view before returning

        var rec = new OpRecorder();
        Assert.Equal((int)Status.Ok, rx.TryRecv(rec));
        Assert.Equal(1, rec.Delivers);
        Assert.Equal(0, rec.Completions);
        Assert.Equal(7UL, rec.Received!.Value.Id);
        Assert.True(MessageChecksum.CheckPattern(7, rec.Received.Value.Payload.Span));
        Assert.Equal(100, rec.Received.Value.Payload.Length);

        Assert.Equal((int)Status.Empty, rx.TryRecv(new OpRecorder()));
        tx.Release();
        rx.Release();
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task TrySend_WhenFull_ReturnsFull()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 2);
        Assert.Equal((int)Status.Ok, tx.TrySend(1));
        Assert.Equal((int)Status.Ok, tx.TrySend(2));
        Assert.Equal((int)Status.Full, tx.TrySend(3));
        var rec = new OpRecorder();
        Assert.Equal((int)Status.Ok, rx.TryRecv(rec));
        Assert.Equal(1UL, rec.Received!.Value.Id);
        Assert.Equal((int)Status.Ok, tx.TrySend(3));
        tx.Release();
        rx.Release();
    }

    [Fact]
    public async Task TrySend_EmptyPayload_RoundTripsWithNullData()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx.TrySendView(5, 0, 0));
        var rec = new OpRecorder();
        Assert.Equal((int)Status.Ok, rx.TryRecv(rec));
        Assert.Equal(5UL, rec.Received!.Value.Id);
        Assert.Equal(0, rec.Received.Value.Payload.Length);
        tx.Release();
        rx.Release();
    }

    [Fact]
    public async Task Send_WithRoom_ReturnsOkAndNeverCallsTheCompletion()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        var fast = new OpRecorder();
        Assert.Equal((int)Status.Ok, tx.Send(1, fast, out ulong op));
        Assert.Equal(0UL, op);

        // A pending op issued after it completes on the thread pool; by then a (wrong) completion
        // of the fast path, queued earlier, would have had its chance too.
        var pending = new OpRecorder();
        Assert.Equal((int)Status.Pending, tx.Send(2, pending, out _));
        Assert.Equal((int)Status.Ok, rx.TryRecv(new OpRecorder()));
        Assert.Equal((int)Status.Ok, await pending.WaitAsync("pending send"));
        tx.Release();
        rx.Release();
        Assert.Equal(0, fast.Completions);
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task Send_WhenFull_ReturnsPendingAndCompletesOnceOnThePoolWhenRoomAppears()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx.TrySend(1));
        var rec = new OpRecorder();
        Assert.Equal((int)Status.Pending, tx.Send(2, rec, out ulong op, Pattern(2, 10)));
        Assert.NotEqual(0UL, op);
        Assert.Equal(0, rec.Completions);

        var first = new OpRecorder();
        Assert.Equal((int)Status.Ok, rx.TryRecv(first)); // frees the slot: the pending send moves in
        Assert.Equal(1UL, first.Received!.Value.Id);
        Assert.Equal((int)Status.Ok, await rec.WaitAsync("pending send"));
        Assert.Equal(1, rec.Completions);
        Assert.False(rec.RanInline, "the completion ran inline in the call that caused it");
        Assert.True(rec.RanOnThreadPool, "the completion must run on a thread-pool thread");

        var second = new OpRecorder();
        Assert.Equal((int)Status.Ok, rx.TryRecv(second));
        Assert.Equal(2UL, second.Received!.Value.Id);
        Assert.True(MessageChecksum.CheckPattern(2, second.Received.Value.Payload.Span));
        tx.Release();
        rx.Release();
        Assert.Equal(1, rec.Completions);
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task Recv_WhenQueued_DeliversSynchronouslyAndReturnsOk()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx.TrySend(9, Pattern(9, 3)));
        var rec = new OpRecorder();
        Assert.Equal((int)Status.Ok, rx.Recv(rec, out ulong op));
        Assert.Equal(0UL, op);
        Assert.Equal(1, rec.Delivers); // before recv returned
        Assert.Equal(9UL, rec.Received!.Value.Id);

        var later = new OpRecorder();
        Assert.Equal((int)Status.Pending, rx.Recv(later, out _));
        Assert.Equal((int)Status.Ok, tx.TrySend(10));
        Assert.Equal((int)Status.Ok, await later.WaitAsync("pending recv"));
        tx.Release();
        rx.Release();
        Assert.Equal(0, rec.Completions);
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task PendingOps_OneAtATime_ReuseOneOpObjectPerKind()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        var chan = (ExportChannel)PortTable.Resolve(rx.Handle, PortTable.ReceiverTag)!;
        const int rounds = 200;
        for (int i = 0; i < rounds; i++)
        {
            // A receive that waits, completed by a send.
            var recv = new OpRecorder();
            Assert.Equal((int)Status.Pending, rx.Recv(recv, out _));
            Assert.Equal((int)Status.Ok, tx.TrySend((ulong)i));
            Assert.Equal((int)Status.Ok, await recv.WaitAsync($"pending recv {i}"));
            Assert.Equal((ulong)i, recv.Received!.Value.Id);
            // A send that waits for room, completed by a receive.
            Assert.Equal((int)Status.Ok, tx.TrySend(1_000_000UL + (ulong)i));
            var send = new OpRecorder();
            Assert.Equal((int)Status.Pending, tx.Send(2_000_000UL + (ulong)i, send, out _));
            var first = new OpRecorder();
            Assert.Equal((int)Status.Ok, rx.TryRecv(first));
            Assert.Equal(1_000_000UL + (ulong)i, first.Received!.Value.Id);
            Assert.Equal((int)Status.Ok, await send.WaitAsync($"pending send {i}"));
            var second = new OpRecorder();
            Assert.Equal((int)Status.Ok, rx.TryRecv(second));
            Assert.Equal(2_000_000UL + (ulong)i, second.Received!.Value.Id);
            Assert.Equal(1, recv.Completions);
            Assert.Equal(1, send.Completions);
        }
        // Each completion hands its op back before its callback runs, and the next op of its kind
        // starts after that callback: one receive op and one send op in all.
        Assert.Equal(2, chan.OpsMade);
        tx.Release();
        rx.Release();
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task Recv_WhenEmpty_ReturnsPendingAndCompletesWithTheMessageOnThePool()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        var rec = new OpRecorder();
        Assert.Equal((int)Status.Pending, rx.Recv(rec, out ulong op));
        Assert.NotEqual(0UL, op);
        Assert.Equal((int)Status.Ok, tx.TrySend(3, Pattern(3, 33))); // handed straight to the receive
        Assert.Equal((int)Status.Ok, await rec.WaitAsync("pending recv"));
        Assert.Equal(0, rec.Delivers);
        Assert.Equal(3UL, rec.Received!.Value.Id);
        Assert.True(MessageChecksum.CheckPattern(3, rec.Received.Value.Payload.Span));
        Assert.False(rec.RanInline, "the completion ran inline in the send that caused it");
        Assert.True(rec.RanOnThreadPool);
        Assert.Equal((int)Status.Empty, rx.TryRecv(new OpRecorder())); // not also buffered
        tx.Release();
        rx.Release();
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task Recv_ConcurrentPending_ServedInIssueOrder()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 4);
        const int n = 50;
        var recs = new OpRecorder[n];
        var ops = new HashSet<ulong>();
        for (int i = 0; i < n; i++)
        {
            recs[i] = new OpRecorder();
            Assert.Equal((int)Status.Pending, rx.Recv(recs[i], out ulong op));
            Assert.True(ops.Add(op), "op ids are unique");
        }
        Assert.Equal((int)Status.Empty, rx.TryRecv(new OpRecorder())); // pending receives go first
        for (int i = 0; i < n; i++) Assert.Equal((int)Status.Ok, tx.TrySend((ulong)i));
        for (int i = 0; i < n; i++)
        {
            Assert.Equal((int)Status.Ok, await recs[i].WaitAsync($"recv {i}"));
            Assert.Equal((ulong)i, recs[i].Received!.Value.Id);
        }
        tx.Release();
        rx.Release();
        Assert.All(recs, r => Assert.Equal(1, r.Completions));
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task Send_PendingSenders_EnqueueInFifoOrder()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx.TrySend(0));
        const int n = 20;
        var recs = new OpRecorder[n];
        for (int i = 1; i <= n; i++)
        {
            recs[i - 1] = new OpRecorder();
            Assert.Equal((int)Status.Pending, tx.Send((ulong)i, recs[i - 1], out _));
        }
        Assert.Equal((int)Status.Full, tx.TrySend(999)); // pending sends go first
        for (int i = 0; i <= n; i++)
        {
            var (status, m) = await RecvAndWaitAsync(rx);
            Assert.Equal((int)Status.Ok, status);
            Assert.Equal((ulong)i, m!.Value.Id);
        }
        foreach (OpRecorder r in recs) Assert.Equal((int)Status.Ok, await r.WaitAsync("pending send"));
        tx.Release();
        rx.Release();
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task Completion_ReentersTheSamePort_DoesNotDeadlock()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        const int n = 200;
        var received = new List<ulong>();
        var allDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // Each receive completion issues the next receive on the same port from inside the callback,
        // and a send completion sends the next message from inside its callback.
        void StartRecv()
        {
            var rec = new OpRecorder
            {
                OnComplete = r =>
                {
                    lock (received) received.Add(r.Received!.Value.Id);
                    if (received.Count == n) allDone.TrySetResult();
                    else StartRecv();
                },
                OnDeliver = r =>
                {
                    lock (received) received.Add(r.Received!.Value.Id);
                },
            };
            int status = rx.Recv(rec, out _);
            if (status == (int)Status.Ok)
            {
                if (received.Count == n) allDone.TrySetResult();
                else StartRecv();
            }
            else if (status != (int)Status.Pending) OpRecorder.Fail($"re-entrant recv returned {Name(status)}");
        }

        void SendFrom(int i)
        {
            for (; i < n; i++)
            {
                int next = i + 1;
                var rec = new OpRecorder { OnComplete = _ => SendFrom(next) };
                int status = tx.Send((ulong)i, rec, out _);
                if (status == (int)Status.Pending) return; // the completion continues the loop
                if (status != (int)Status.Ok) OpRecorder.Fail($"re-entrant send returned {Name(status)}");
            }
        }

        StartRecv();
        SendFrom(0);
        await allDone.Task.Within("200 messages through re-entrant callbacks");
        lock (received) Assert.Equal(Enumerable.Range(0, n).Select(i => (ulong)i), received);
        tx.Release();
        rx.Release();
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task Deliver_ReentersTheSamePort_DoesNotDeadlock()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 4);
        for (ulong i = 0; i < 4; i++) Assert.Equal((int)Status.Ok, tx.TrySend(i));
        var ids = new List<ulong>();
        OpRecorder Next() => new()
        {
            OnDeliver = r =>
            {
                ids.Add(r.Received!.Value.Id);
                // From inside deliver: receive again and send again on the same channel.
                rx.TryRecv(Next());
                tx.TrySend(100 + r.Received.Value.Id);
            },
        };
        Assert.Equal((int)Status.Ok, rx.TryRecv(Next()));
        // The chain drains everything, including what the callbacks sent, until the channel is empty.
        Assert.True(ids.Count >= 4);
        Assert.Equal(new ulong[] { 0, 1, 2, 3 }, ids.Take(4));
        tx.Release();
        rx.Release();
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task Clone_SendsIntoTheSameChannel()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 4);
        Assert.Equal((int)Status.Ok, tx.Clone(out RawSender clone));
        Assert.NotEqual(tx.Handle, clone.Handle);
        Assert.Equal((int)Status.Ok, clone.TrySend(1));
        Assert.Equal((int)Status.Ok, tx.TrySend(2));
        var a = new OpRecorder();
        var b = new OpRecorder();
        Assert.Equal((int)Status.Ok, rx.TryRecv(a));
        Assert.Equal((int)Status.Ok, rx.TryRecv(b));
        Assert.Equal(1UL, a.Received!.Value.Id);
        Assert.Equal(2UL, b.Received!.Value.Id);
        Assert.Equal((int)Status.Ok, clone.Release());
        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal((int)Status.Ok, rx.Release());
    }

    [Fact]
    public async Task PortWrappers_CloneCloseAndDispose_WorkOnExportedPorts()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = rt.CreateChannel(2);
        using (SenderPort clone = tx.Clone())
        {
            Assert.True(clone.IsOwned);
            tx.Close();
        }
        var raw = new RawReceiver(rx.Native);
        Assert.Equal((int)Status.Closed, raw.TryRecv(new OpRecorder()));
        tx.Dispose();
        rx.Dispose();
        Assert.Equal(0, rt.LiveChannelCount);
    }

    private static unsafe nint SenderVTable() => (nint)ExportVTables.Sender;

    private static unsafe nint ReceiverVTable() => (nint)ExportVTables.Receiver;

    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    public void TrySendTryRecv_SynchronousPaths_AllocateOnlyThePayloadCopy(int payloadLength)
    {
        using var scope = new RuntimeScope();
        var (tx, rx) = CreateRaw(scope.Runtime, 16);
        byte[] payload = Pattern(1, payloadLength);
        const int count = 10_000;
        RoundTrips(100); // warm up: JIT, tiering
        long before = GC.GetAllocatedBytesForCurrentThread();
        long delivered = TestCallbacks.t_delivered;
        RoundTrips(count);
        long perMessage = (GC.GetAllocatedBytesForCurrentThread() - before) / count;
        Assert.Equal(count, TestCallbacks.t_delivered - delivered);
        // The exporter copies the payload into one byte[] (none when empty); nothing else.
        long arrayBytes = payloadLength == 0 ? 0 : payloadLength + 3 * IntPtr.Size;
        Assert.InRange(perMessage, arrayBytes, arrayBytes + IntPtr.Size);
        tx.Release();
        rx.Release();

        void RoundTrips(int n)
        {
            for (int i = 0; i < n; i++)
            {
                // No xunit asserts in the loop: they allocate themselves.
                if (tx.TrySend(1, payload) != (int)Status.Ok || rx.TryRecvCounting() != (int)Status.Ok)
                    throw new InvalidOperationException("round trip failed");
            }
        }
    }
}
