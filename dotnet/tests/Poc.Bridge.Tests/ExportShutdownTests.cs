using Xunit;
using static Poc.Bridge.Tests.ExportTestHarness;

namespace Poc.Bridge.Tests;

/// <summary>Shutdown of the runtime that owns .NET-exported channels (bridge.h rule 8).</summary>
public sealed class ExportShutdownTests
{
    [Fact]
    public async Task Shutdown_WithPendingOps_CompletesThemShutdownThenCallsAnswerShutdownAndReleaseWorks()
    {
        var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        var (tx2, rx2) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx.TrySend(1));
        var sends = Enumerable.Range(0, 3).Select(_ => new OpRecorder()).ToArray();
        foreach (OpRecorder s in sends) Assert.Equal((int)Status.Pending, tx.Send(2, s, out _));
        var recvs = Enumerable.Range(0, 3).Select(_ => new OpRecorder()).ToArray();
        foreach (OpRecorder r in recvs) Assert.Equal((int)Status.Pending, rx2.Recv(r, out _));

        await rt.ShutdownAsync().AsTask().Within("shutdown");
        foreach (OpRecorder s in sends.Concat(recvs))
            Assert.Equal((int)Status.Shutdown, await s.WaitAsync("pending op at shutdown"));

        // Later calls answer SHUTDOWN...
        Assert.Equal((int)Status.Shutdown, tx.TrySend(3));
        Assert.Equal((int)Status.Shutdown, tx.Send(3, new OpRecorder(), out _));
        Assert.Equal((int)Status.Shutdown, tx.Cancel(1));
        Assert.Equal((int)Status.Shutdown, tx.Close());
        Assert.Equal((int)Status.Shutdown, tx.Clone(out _));
        Assert.Equal((int)Status.Shutdown, rx.TryRecv(new OpRecorder()));
        Assert.Equal((int)Status.Shutdown, rx.Recv(new OpRecorder(), out _));
        Assert.Equal((int)Status.Shutdown, rx.Cancel(1));
        Assert.Equal((int)Status.Shutdown, rx.Close());
        Assert.Throws<InteropException>(() => rt.CreateChannel(1));

        // ...release stays valid (also after disposal), exactly once.
        await rt.DisposeAsync();
        await rt.ShutdownAsync(); // idempotent
        foreach (int status in new[] { tx.Release(), rx.Release(), tx2.Release(), rx2.Release() })
            Assert.Equal((int)Status.Ok, status);
        Assert.Equal((int)Status.Invalid, tx.Release());
        Assert.Equal((int)Status.Invalid, rx.Release());
        Assert.Equal(0, rt.LiveChannelCount);
        Assert.All(sends.Concat(recvs), r => Assert.Equal(1, r.Completions));
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task Shutdown_RacingWithNewOps_CompletesEveryPendingOpExactlyOnce()
    {
        for (int i = 0; i < 200; i++)
        {
            var rt = new DotNetRuntime();
            var (tx, rx) = CreateRaw(rt, 1);
            var recs = new System.Collections.Concurrent.ConcurrentBag<OpRecorder>();
            var start = new Barrier(3);
            Task senders = Task.Run(() =>
            {
                start.SignalAndWait();
                for (int k = 0; k < 20; k++)
                {
                    var rec = new OpRecorder();
                    if (tx.Send((ulong)k, rec, out _) == (int)Status.Pending) recs.Add(rec);
                }
            });
            Task receivers = Task.Run(() =>
            {
                start.SignalAndWait();
                for (int k = 0; k < 20; k++)
                {
                    var rec = new OpRecorder();
                    if (rx.Recv(rec, out _) == (int)Status.Pending) recs.Add(rec);
                }
            });
            start.SignalAndWait();
            await rt.ShutdownAsync().AsTask().Within("shutdown");
            await Task.WhenAll(senders, receivers).Within("ops racing shutdown");
            foreach (OpRecorder rec in recs)
            {
                int status = await rec.WaitAsync($"iteration {i}: op racing shutdown");
                Assert.True(status is (int)Status.Ok or (int)Status.Shutdown, $"unexpected {Name(status)}");
            }
            Assert.Equal((int)Status.Ok, tx.Release());
            Assert.Equal((int)Status.Ok, rx.Release());
            Assert.All(recs, r => Assert.Equal(1, r.Completions));
            foreach (OpRecorder rec in recs) rec.Forget();
        }
        OpRecorder.AssertNoFailures();
    }
}
