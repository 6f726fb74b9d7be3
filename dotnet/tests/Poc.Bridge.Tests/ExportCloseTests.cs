using Xunit;
using static Poc.Bridge.Tests.ExportTestHarness;

namespace Poc.Bridge.Tests;

/// <summary>Close and release of the .NET exporter's ports (bridge.h rule 7), through the raw vtables.</summary>
public sealed class ExportCloseTests
{
    [Fact]
    public async Task CloseSender_WithQueuedMessages_ReceiversDrainThenGetClosed()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 4);
        for (ulong i = 0; i < 3; i++) Assert.Equal((int)Status.Ok, tx.TrySend(i));
        Assert.Equal((int)Status.Ok, tx.Close());
        Assert.Equal((int)Status.Ok, tx.Close()); // idempotent
        Assert.Equal((int)Status.Closed, tx.TrySend(9));
        Assert.Equal((int)Status.Closed, tx.Send(9, new OpRecorder(), out _));
        for (ulong i = 0; i < 3; i++)
        {
            var rec = new OpRecorder();
            Assert.Equal((int)Status.Ok, rx.Recv(rec, out _));
            Assert.Equal(i, rec.Received!.Value.Id);
        }
        Assert.Equal((int)Status.Closed, rx.TryRecv(new OpRecorder()));
        Assert.Equal((int)Status.Closed, rx.Recv(new OpRecorder(), out _));
        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal((int)Status.Ok, rx.Release());
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task CloseSender_WithPendingOps_CompletesThemClosedExactlyOnce()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        // A pending receive (empty channel)...
        var recv = new OpRecorder();
        Assert.Equal((int)Status.Pending, rx.Recv(recv, out _));
        Assert.Equal((int)Status.Ok, tx.Close());
        Assert.Equal((int)Status.Closed, await recv.WaitAsync("pending recv on close"));
        Assert.Null(recv.Received);

        // ...and pending sends (full channel) on another channel.
        var (tx2, rx2) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx2.TrySend(1));
        var sends = Enumerable.Range(0, 3).Select(_ => new OpRecorder()).ToArray();
        foreach (OpRecorder s in sends) Assert.Equal((int)Status.Pending, tx2.Send(2, s, out _));
        Assert.Equal((int)Status.Ok, tx2.Close());
        foreach (OpRecorder s in sends) Assert.Equal((int)Status.Closed, await s.WaitAsync("pending send on close"));
        // Only what was enqueued before the close is drained.
        var got = new OpRecorder();
        Assert.Equal((int)Status.Ok, rx2.TryRecv(got));
        Assert.Equal(1UL, got.Received!.Value.Id);
        Assert.Equal((int)Status.Closed, rx2.TryRecv(new OpRecorder()));

        foreach (var r in new[] { tx.Release(), rx.Release(), tx2.Release(), rx2.Release() }) Assert.Equal((int)Status.Ok, r);
        Assert.All(sends, s => Assert.Equal(1, s.Completions));
        Assert.Equal(1, recv.Completions);
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task ReleaseLastSender_ClosesTheChannel_ButNotWhileAClonedSenderLives()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 4);
        Assert.Equal((int)Status.Ok, tx.Clone(out RawSender clone));
        Assert.Equal((int)Status.Ok, tx.TrySend(1));
        var pending = new OpRecorder();
        Assert.Equal((int)Status.Ok, rx.TryRecv(new OpRecorder()));
        Assert.Equal((int)Status.Pending, rx.Recv(pending, out _));

        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal((int)Status.Ok, clone.TrySend(2)); // still open: the clone lives
        Assert.Equal((int)Status.Ok, await pending.WaitAsync("recv after first release"));
        Assert.Equal(2UL, pending.Received!.Value.Id);

        var closed = new OpRecorder();
        Assert.Equal((int)Status.Pending, rx.Recv(closed, out _));
        Assert.Equal((int)Status.Ok, clone.Release()); // the last sender
        Assert.Equal((int)Status.Closed, await closed.WaitAsync("recv after the last release"));
        Assert.Equal((int)Status.Closed, rx.TryRecv(new OpRecorder()));
        Assert.Equal((int)Status.Ok, rx.Release());
        Assert.Equal(0, rt.LiveChannelCount);
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task ReleaseSender_WithPendingSends_CompletesThemCancelledAndKeepsOtherPortsSends()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx.Clone(out RawSender clone));
        Assert.Equal((int)Status.Ok, tx.TrySend(1));
        var mine = new OpRecorder();
        var theirs = new OpRecorder();
        Assert.Equal((int)Status.Pending, clone.Send(2, mine, out _));
        Assert.Equal((int)Status.Pending, tx.Send(3, theirs, out _));
        Assert.Equal((int)Status.Ok, clone.Release());
        Assert.Equal((int)Status.Cancelled, await mine.WaitAsync("pending send of the released port"));

        var (s1, m1) = await RecvAndWaitAsync(rx);
        var (s2, m2) = await RecvAndWaitAsync(rx);
        Assert.Equal(((int)Status.Ok, 1UL), (s1, m1!.Value.Id));
        Assert.Equal(((int)Status.Ok, 3UL), (s2, m2!.Value.Id)); // message 2 was never enqueued
        Assert.Equal((int)Status.Ok, await theirs.WaitAsync("pending send of the live port"));
        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal((int)Status.Ok, rx.Release());
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task CloseReceiver_FailsPendingAndLaterSendsAndDropsQueuedMessages()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx.TrySend(1));
        var pending = new OpRecorder();
        Assert.Equal((int)Status.Pending, tx.Send(2, pending, out _));
        Assert.Equal((int)Status.Ok, rx.Close());
        Assert.Equal((int)Status.Ok, rx.Close()); // idempotent
        Assert.Equal((int)Status.Closed, await pending.WaitAsync("pending send on receiver close"));
        Assert.Equal((int)Status.Closed, tx.TrySend(3));
        Assert.Equal((int)Status.Closed, tx.Send(3, new OpRecorder(), out _));
        Assert.Equal((int)Status.Closed, rx.TryRecv(new OpRecorder())); // queued message dropped
        Assert.Equal((int)Status.Closed, rx.Recv(new OpRecorder(), out _));
        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal((int)Status.Ok, rx.Release());
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task ReleaseReceiver_FailsPendingSendsWithClosed()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx.TrySend(1));
        var pending = new OpRecorder();
        Assert.Equal((int)Status.Pending, tx.Send(2, pending, out _));
        Assert.Equal((int)Status.Ok, rx.Release());
        Assert.Equal((int)Status.Closed, await pending.WaitAsync("pending send on receiver release"));
        Assert.Equal((int)Status.Closed, tx.Send(3, new OpRecorder(), out _));
        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal(0, rt.LiveChannelCount);
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task CloseReceiver_WithPendingRecvs_CompletesThemClosed()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        var recs = Enumerable.Range(0, 3).Select(_ => new OpRecorder()).ToArray();
        foreach (OpRecorder r in recs) Assert.Equal((int)Status.Pending, rx.Recv(r, out _));
        Assert.Equal((int)Status.Ok, rx.Close());
        foreach (OpRecorder r in recs) Assert.Equal((int)Status.Closed, await r.WaitAsync("pending recv on receiver close"));
        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal((int)Status.Ok, rx.Release());
        OpRecorder.AssertNoFailures();
    }
}
