using Xunit;
using Xunit.Abstractions;
using static Poc.Bridge.Tests.ExportTestHarness;

namespace Poc.Bridge.Tests;

/// <summary>Cancellation of the .NET exporter's ops (bridge.h rule 5): a request that is exact —
/// CANCELLED only when the op had no effect — including when it races with completion.</summary>
public sealed class ExportCancelTests(ITestOutputHelper output)
{
    private const int RaceIterations = 3000;

    [Fact]
    public async Task CancelSend_Pending_CompletesCancelledAndEnqueuesNothing()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx.TrySend(1));
        var rec = new OpRecorder();
        Assert.Equal((int)Status.Pending, tx.Send(2, rec, out ulong op));
        Assert.Equal((int)Status.Ok, tx.Cancel(op));
        Assert.Equal((int)Status.Cancelled, await rec.WaitAsync("cancelled send"));
        Assert.False(rec.RanInline, "a cancelled op's completion must not run inside cancel");

        var got = new OpRecorder();
        Assert.Equal((int)Status.Ok, rx.TryRecv(got));
        Assert.Equal(1UL, got.Received!.Value.Id);
        Assert.Equal((int)Status.Empty, rx.TryRecv(new OpRecorder()));
        Assert.Equal((int)Status.Ok, tx.Cancel(op)); // finished op: still a harmless request
        tx.Release();
        rx.Release();
        Assert.Equal(1, rec.Completions);
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task CancelRecv_Pending_CompletesCancelledAndTheNextMessageGoesToTheNextRecv()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        var first = new OpRecorder();
        var second = new OpRecorder();
        Assert.Equal((int)Status.Pending, rx.Recv(first, out ulong op1));
        Assert.Equal((int)Status.Pending, rx.Recv(second, out _));
        Assert.Equal((int)Status.Ok, rx.Cancel(op1));
        Assert.Equal((int)Status.Cancelled, await first.WaitAsync("cancelled recv"));
        Assert.Null(first.Received);
        Assert.Equal((int)Status.Ok, tx.TrySend(5));
        Assert.Equal((int)Status.Ok, await second.WaitAsync("second recv"));
        Assert.Equal(5UL, second.Received!.Value.Id);
        tx.Release();
        rx.Release();
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task Cancel_UnknownOrZeroOp_ReturnsOk()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx.Cancel(0));
        Assert.Equal((int)Status.Ok, tx.Cancel(123456));
        Assert.Equal((int)Status.Ok, rx.Cancel(0));
        Assert.Equal((int)Status.Ok, rx.Cancel(ulong.MaxValue));
        tx.Release();
        rx.Release();
    }

    [Fact]
    public async Task CancelSend_OpOfAnotherPort_DoesNotReachIt()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx.Clone(out RawSender clone));
        Assert.Equal((int)Status.Ok, tx.TrySend(1));
        var rec = new OpRecorder();
        Assert.Equal((int)Status.Pending, tx.Send(2, rec, out ulong op));
        Assert.Equal((int)Status.Ok, clone.Cancel(op)); // another port: treated as unknown
        Assert.Equal((int)Status.Ok, rx.TryRecv(new OpRecorder()));
        Assert.Equal((int)Status.Ok, await rec.WaitAsync("send cancelled through another port"));
        tx.Release();
        clone.Release();
        rx.Release();
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task CancelSend_RacingWithRoomAppearing_CompletesOnceAndNothingIsLostOrDuplicated()
    {
        await using var rt = new DotNetRuntime();
        int won = 0, cancelled = 0;
        for (int i = 0; i < RaceIterations; i++)
        {
            var (tx, rx) = CreateRaw(rt, 1);
            Assert.Equal((int)Status.Ok, tx.TrySend(1));
            var rec = new OpRecorder();
            Assert.Equal((int)Status.Pending, tx.Send(2, rec, out ulong op));

            // Race: one thread frees the slot (which moves message 2 in), another cancels.
            var start = new Barrier(2);
            var first = new OpRecorder();
            Task take = Task.Run(() => { start.SignalAndWait(); return rx.TryRecv(first); });
            Task<int> cancel = Task.Run(() => { start.SignalAndWait(); return tx.Cancel(op); });
            Assert.Equal((int)Status.Ok, await cancel.Within("cancel"));
            await take.Within("try_recv");
            Assert.Equal(1UL, first.Received!.Value.Id);
            int status = await rec.WaitAsync($"iteration {i}: racing send");

            // Exact: OK means message 2 is in the channel, CANCELLED means it is not.
            var rest = new OpRecorder();
            int next = rx.TryRecv(rest);
            if (status == (int)Status.Ok)
            {
                won++;
                Assert.Equal((int)Status.Ok, next);
                Assert.Equal(2UL, rest.Received!.Value.Id);
            }
            else
            {
                Assert.Equal((int)Status.Cancelled, status);
                cancelled++;
                Assert.Equal((int)Status.Empty, next);
            }
            Assert.Equal((int)Status.Ok, tx.Release());
            Assert.Equal((int)Status.Ok, rx.Release());
            Assert.Equal(1, rec.Completions);
            rec.Forget();
            first.Forget();
            rest.Forget();
        }
        Assert.Equal(RaceIterations, won + cancelled);
        output.WriteLine($"{won} completed with their real outcome, {cancelled} cancelled");
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task CancelRecv_RacingWithASend_CompletesOnceAndNothingIsLostOrDuplicated()
    {
        await using var rt = new DotNetRuntime();
        int won = 0, cancelled = 0;
        for (int i = 0; i < RaceIterations; i++)
        {
            var (tx, rx) = CreateRaw(rt, 1);
            var rec = new OpRecorder();
            Assert.Equal((int)Status.Pending, rx.Recv(rec, out ulong op));

            var start = new Barrier(2);
            Task<int> send = Task.Run(() => { start.SignalAndWait(); return tx.TrySend(7); });
            Task<int> cancel = Task.Run(() => { start.SignalAndWait(); return rx.Cancel(op); });
            Assert.Equal((int)Status.Ok, await send.Within("try_send"));
            Assert.Equal((int)Status.Ok, await cancel.Within("cancel"));
            int status = await rec.WaitAsync($"iteration {i}: racing recv");

            // Exact: a receive that got the message took it out; a cancelled one left it queued.
            var rest = new OpRecorder();
            int next = rx.TryRecv(rest);
            if (status == (int)Status.Ok)
            {
                won++;
                Assert.Equal(7UL, rec.Received!.Value.Id);
                Assert.Equal((int)Status.Empty, next);
            }
            else
            {
                Assert.Equal((int)Status.Cancelled, status);
                cancelled++;
                Assert.Null(rec.Received);
                Assert.Equal((int)Status.Ok, next);
                Assert.Equal(7UL, rest.Received!.Value.Id);
            }
            Assert.Equal((int)Status.Ok, tx.Release());
            Assert.Equal((int)Status.Ok, rx.Release());
            Assert.Equal(1, rec.Completions);
            rec.Forget();
            rest.Forget();
        }
        Assert.Equal(RaceIterations, won + cancelled);
        output.WriteLine($"{won} completed with their real outcome, {cancelled} cancelled");
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task CancelSend_RacingWithClose_CompletesOnceWithCancelledOrClosed()
    {
        await using var rt = new DotNetRuntime();
        for (int i = 0; i < RaceIterations; i++)
        {
            var (tx, rx) = CreateRaw(rt, 1);
            Assert.Equal((int)Status.Ok, tx.TrySend(1));
            var rec = new OpRecorder();
            Assert.Equal((int)Status.Pending, tx.Send(2, rec, out ulong op));
            var start = new Barrier(2);
            Task<int> close = Task.Run(() => { start.SignalAndWait(); return rx.Close(); });
            Task<int> cancel = Task.Run(() => { start.SignalAndWait(); return tx.Cancel(op); });
            Assert.Equal((int)Status.Ok, await close.Within("close"));
            Assert.Equal((int)Status.Ok, await cancel.Within("cancel"));
            int status = await rec.WaitAsync($"iteration {i}: send racing close and cancel");
            Assert.True(status is (int)Status.Cancelled or (int)Status.Closed, $"unexpected {Name(status)}");
            tx.Release();
            rx.Release();
            Assert.Equal(1, rec.Completions);
            rec.Forget();
        }
        OpRecorder.AssertNoFailures();
    }
}
