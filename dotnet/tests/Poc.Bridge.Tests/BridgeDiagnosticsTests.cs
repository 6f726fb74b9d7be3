using System.Threading.Channels;
using Xunit;

namespace Poc.Bridge.Tests;

/// <summary>
/// <see cref="BridgeDiagnostics"/>: the public snapshot of the bridge's process-wide counters. The
/// counters are global, so these tests run in a collection with parallelization disabled: xunit
/// runs it after the parallel collections, alone, and every delta below is exact.
/// </summary>
[Collection(BridgeDiagnosticsCollection.Name)]
public sealed class BridgeDiagnosticsTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_pending_read_completed_by_a_write_counts_one_pending_op_and_one_completion()
    {
        CollectDroppedPorts();
        await using var dotnet = new DotNetRuntime();
        var (tx, rx) = dotnet.CreateChannel(1);
        ChannelReader<Message> reader = rx.ToReader();
        ChannelWriter<Message> writer = tx.ToWriter();
        try
        {
            BridgeCounters before = BridgeDiagnostics.Snapshot();
            ValueTask<Message> read = reader.ReadAsync();
            Assert.False(read.IsCompleted, "a read of an empty channel is pending");
            BridgeCounters armed = BridgeDiagnostics.Snapshot();
            Assert.Equal(before.PendingPortOps + 1, armed.PendingPortOps);
            Assert.Equal(before.CompletedPortOps, armed.CompletedPortOps);

            // The write meets the waiting receive: it completes at once, the read by its callback.
            ValueTask write = writer.WriteAsync(new Message(42, new byte[] { 1, 2, 3 }));
            Assert.True(write.IsCompletedSuccessfully, "a write to a channel with a waiting read completes at once");
            Message m = await read.AsTask().WaitAsync(Limit);
            Assert.Equal(42UL, m.Id);

            BridgeCounters after = BridgeDiagnostics.Snapshot();
            Assert.Equal(before.PendingPortOps + 1, after.PendingPortOps);
            Assert.Equal(before.CompletedPortOps + 1, after.CompletedPortOps);
            Assert.Equal(before.Mishaps, after.Mishaps);
        }
        finally
        {
            ((IDisposable)writer).Dispose();
            ((IDisposable)reader).Dispose();
        }
    }

    [Fact]
    public async Task Completions_match_pending_ops_across_a_native_channel()
    {
        BridgeCounters before = BridgeDiagnostics.Snapshot();
        await using (var cpp = new CppRuntime())
        {
            var (tx, rx) = cpp.CreateChannel(1);
            ChannelReader<Message> reader = rx.ToReader();
            ChannelWriter<Message> writer = tx.ToWriter();
            try
            {
                // Reads first, so each waits for the C++ side to call back; 100 round trips.
                for (ulong i = 0; i < 100; i++)
                {
                    ValueTask<Message> read = reader.ReadAsync();
                    await writer.WriteAsync(new Message(i));
                    Assert.Equal(i, (await read.AsTask().WaitAsync(Limit)).Id);
                }
            }
            finally
            {
                ((IDisposable)writer).Dispose();
                ((IDisposable)reader).Dispose();
            }
        }
        BridgeCounters after = BridgeDiagnostics.Snapshot();
        long pending = after.PendingPortOps - before.PendingPortOps;
        Assert.True(pending >= 1, $"at least the first read went PENDING (got {pending})");
        Assert.Equal(pending, after.CompletedPortOps - before.CompletedPortOps);
        Assert.Equal(before.Mishaps, after.Mishaps);
    }

    [Fact]
    public async Task Live_counts_move_with_ports_and_agents_and_return_to_baseline_after_dispose()
    {
        CollectDroppedPorts();
        BridgeCounters baseline = BridgeDiagnostics.Snapshot();
        await using (var dotnet = new DotNetRuntime())
        await using (var cpp = new CppRuntime())
        {
            var (tx, rx) = dotnet.CreateChannel(4);
            using (tx)
            using (rx)
            using (SenderPort clone = tx.Clone())
            {
                BridgeCounters ports = BridgeDiagnostics.Snapshot();
                Assert.Equal(baseline.LiveExportHandles + 3, ports.LiveExportHandles); // sender, receiver, clone
                Assert.True(ports.ExportHandleCapacity >= ports.LiveExportHandles);
            }

            // A C++ consumer agent on a C++ channel whose sender we still hold: it waits, running.
            var (ctx, crx) = cpp.CreateChannel(1);
            BridgeCounters idle = BridgeDiagnostics.Snapshot();
            long started = idle.NativeAgentsStarted;
            Task<AgentReport> consumer = cpp.RunConsumerAsync(crx);
            BridgeCounters running = BridgeDiagnostics.Snapshot();
            Assert.Equal(idle.RunningNativeAgents + 1, running.RunningNativeAgents);
            Assert.Equal(started + 1, running.NativeAgentsStarted);
            ctx.Dispose(); // the last sender: the channel closes, the consumer ends OK
            AgentReport report = await consumer.WaitAsync(Limit);
            Assert.Equal(Status.Ok, report.Status);
            Assert.Equal(running.NativeAgentsEnded + 1, BridgeDiagnostics.Snapshot().NativeAgentsEnded);
        }

        BridgeCounters after = BridgeDiagnostics.Snapshot();
        DateTime deadline = DateTime.UtcNow + Limit;
        while (after.LiveCounts != baseline.LiveCounts && DateTime.UtcNow < deadline)
        {
            await Task.Delay(1);
            after = BridgeDiagnostics.Snapshot();
        }
        Assert.True(after.LiveCounts == baseline.LiveCounts,
            $"live counts back to baseline within {Limit.TotalSeconds} s: baseline {baseline.LiveCounts}, now {after.LiveCounts}");
        Assert.Equal(baseline.Mishaps, after.Mishaps);
        Assert.Equal(after.PendingPortOps - baseline.PendingPortOps, after.CompletedPortOps - baseline.CompletedPortOps);
    }

    [Fact]
    public async Task Tables_report_their_capacity_and_pools_stay_within_the_listed_ops()
    {
        await using var dotnet = new DotNetRuntime();
        var (tx, rx) = dotnet.CreateChannel(1);
        ChannelReader<Message> reader = rx.ToReader();
        ChannelWriter<Message> writer = tx.ToWriter();
        BridgeCounters c, again;
        try
        {
            await RoundTripsAsync(writer, reader, 0, 10);
            c = BridgeDiagnostics.Snapshot();
            await RoundTripsAsync(writer, reader, 10, 1000);
            again = BridgeDiagnostics.Snapshot();
        }
        finally
        {
            ((IDisposable)writer).Dispose();
            ((IDisposable)reader).Dispose();
        }
        Assert.True(c.ListedSendOps >= 1 && c.ListedReceiveOps >= 1, $"ops were listed: {c}");
        Assert.True(c.SendOpTableCapacity >= c.ListedSendOps, $"send table {c.ListedSendOps}/{c.SendOpTableCapacity}");
        Assert.True(c.ReceiveOpTableCapacity >= c.ListedReceiveOps, $"receive table {c.ListedReceiveOps}/{c.ReceiveOpTableCapacity}");
        Assert.True(c.FutureOpTableCapacity >= c.ListedFutureOps, $"future table {c.ListedFutureOps}/{c.FutureOpTableCapacity}");
        Assert.True(c.PooledSendOps <= c.ListedSendOps, $"pooled send ops {c.PooledSendOps} <= listed {c.ListedSendOps}");
        Assert.True(c.PooledReceiveOps <= c.ListedReceiveOps, $"pooled receive ops {c.PooledReceiveOps} <= listed {c.ListedReceiveOps}");
        // Sequential use reuses pooled ops: 1000 more round trips listed no new op and grew no table.
        Assert.Equal((c.ListedSendOps, c.ListedReceiveOps), (again.ListedSendOps, again.ListedReceiveOps));
        Assert.Equal((c.SendOpTableCapacity, c.ReceiveOpTableCapacity), (again.SendOpTableCapacity, again.ReceiveOpTableCapacity));
    }

    private static async Task RoundTripsAsync(ChannelWriter<Message> writer, ChannelReader<Message> reader, ulong from, ulong to)
    {
        for (ulong i = from; i < to; i++)
        {
            await writer.WriteAsync(new Message(i));
            Assert.Equal(i, (await reader.ReadAsync().AsTask().WaitAsync(Limit)).Id);
        }
    }

    /// <summary>Lets finalizers of ports that earlier tests dropped run now, not during a test's deltas.</summary>
    private static void CollectDroppedPorts()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}

/// <summary>
/// The tests that assert exact deltas of <see cref="BridgeDiagnostics"/> counters: parallelization
/// disabled, so xunit runs them after every parallel collection, one at a time.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class BridgeDiagnosticsCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Bridge diagnostics (process-wide counters, not parallel)";
}
