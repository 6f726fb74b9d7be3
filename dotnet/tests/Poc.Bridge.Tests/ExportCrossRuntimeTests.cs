using Xunit;
using static Poc.Bridge.Tests.ExportTestHarness;

namespace Poc.Bridge.Tests;

/// <summary>C++ and Rust agents producing into and consuming from channels that .NET exports: the
/// native import adapters drive the .NET vtables from their own threads.</summary>
public sealed class ExportCrossRuntimeTests(BridgeRuntimesFixture runtimes) : IClassFixture<BridgeRuntimesFixture>
{
    public static TheoryData<string, string> NativePairs => new()
    {
        { "C++", "C++" }, { "C++", "Rust" }, { "Rust", "C++" }, { "Rust", "Rust" },
    };

    public static TheoryData<string> NativeRuntimes => new() { "C++", "Rust" };

    [Theory]
    [MemberData(nameof(NativePairs))]
    public async Task NativeProducerAndConsumer_DotNetChannelOfCapacity1_TenThousandMessagesArriveInOrder(string producer, string consumer)
    {
        var (tx, rx) = runtimes.DotNet.CreateChannel(1);
        Task<AgentReport> received = runtimes[consumer].RunConsumerAsync(rx);
        AgentReport sent = await runtimes[producer].RunProducerAsync(tx, stream: 7, count: 10_000, payloadLength: 24)
            .Within($"{producer} producer");
        AgentReport got = await received.Within($"{consumer} consumer");
        Assert.Equal(new AgentReport(Status.Ok, 10_000, DotNetAgentTests.ExpectedChecksum(7, 10_000, 24), 0), sent);
        Assert.Equal(sent, got);
    }

    [Theory]
    [MemberData(nameof(NativePairs))]
    public async Task NativeEcho_BetweenTwoDotNetChannels_EchoesEverything(string echo, string peer)
    {
        var (toEcho, echoIn) = runtimes.DotNet.CreateChannel(2);
        var (echoOut, fromEcho) = runtimes.DotNet.CreateChannel(2);
        Task<AgentReport> received = runtimes[peer].RunConsumerAsync(fromEcho);
        Task<AgentReport> echoed = runtimes[echo].RunEchoAsync(echoIn, echoOut);
        AgentReport sent = await runtimes[peer].RunProducerAsync(toEcho, 2, 3000, 5).Within($"{peer} producer");
        Assert.Equal(new AgentReport(Status.Ok, 3000, sent.Checksum, 0), await echoed.Within($"{echo} echo"));
        Assert.Equal(new AgentReport(Status.Ok, 3000, sent.Checksum, 0), await received.Within($"{peer} consumer"));
    }

    [Theory]
    [MemberData(nameof(NativeRuntimes))]
    public async Task NativeProducers_FanInToADotNetChannel_DotNetConsumerSeesEveryStreamInOrder(string producer)
    {
        var (tx, rx) = runtimes.DotNet.CreateChannel(3);
        SenderPort[] senders = [tx, tx.Clone(), tx.Clone()];
        Task<AgentReport> received = runtimes.DotNet.RunConsumerAsync(rx);
        AgentReport[] sent = await Task.WhenAll(senders.Select((s, i) => runtimes[producer].RunProducerAsync(s, (ulong)i, 2000, 3)))
            .Within($"{producer} producers");
        AgentReport got = await received.Within(".NET consumer");
        Assert.All(sent, r => Assert.Equal(Status.Ok, r.Status));
        Assert.Equal(new AgentReport(Status.Ok, 6000, sent.Aggregate(0UL, (a, r) => unchecked(a + r.Checksum)), 0), got);
    }

    [Theory]
    [MemberData(nameof(NativeRuntimes))]
    public async Task NativeProducer_CancelledWhileBlockedOnAFullDotNetChannel_LosesAndDuplicatesNothing(string producer)
    {
        var (tx, rx) = runtimes.DotNet.CreateChannel(1);
        using var cts = new CancellationTokenSource();
        Task<AgentReport> producing = runtimes[producer].RunProducerAsync(tx, 1, 1000, 8, cts.Token);
        // Wait (bounded) until the producer is blocked: the channel holds one message.
        var raw = new RawReceiver(rx.TakeOwnership());
        var first = await RecvAndWaitAsync(raw).Within("first message");
        Assert.Equal((int)Status.Ok, first.Status);
        await cts.CancelAsync();
        AgentReport sent = await producing.Within($"cancelled {producer} producer");
        Assert.Equal(Status.Cancelled, sent.Status);

        // The producer released the last sender: drain. Exactly what it reported as sent arrived.
        ulong count = 1, sum = first.Message!.Value.Checksum();
        while (true)
        {
            var (status, m) = await RecvAndWaitAsync(raw);
            if (status == (int)Status.Closed) break;
            Assert.Equal((int)Status.Ok, status);
            Assert.Equal(MessageChecksum.MakeId(1, count), m!.Value.Id);
            count++;
            sum = unchecked(sum + m.Value.Checksum());
        }
        // Nothing lost, nothing duplicated: the ids above were consecutive from 0, and every agent
        // counts exactly — a cancelled send still completes, and a send that won the race against
        // the cancel is counted (Rust agents learn the outcome through PortSender::send_with_cancel).
        Assert.Equal(sent.Messages, count);
        Assert.Equal(sent.Checksum, sum);
        Assert.Equal((int)Status.Ok, raw.Release());
        OpRecorder.AssertNoFailures();
    }

    [Theory]
    [MemberData(nameof(NativeRuntimes))]
    public async Task NativeAgents_DotNetRuntimeShutsDown_TheirPendingOpsEndWithShutdown(string native)
    {
        var owner = new DotNetRuntime();
        var (tx, rx) = owner.CreateChannel(1);
        var (tx2, rx2) = owner.CreateChannel(1);
        Task<AgentReport> consumer = runtimes[native].RunConsumerAsync(rx);              // waits for a message
        Task<AgentReport> producer = runtimes[native].RunProducerAsync(tx2, 1, 100, 4); // blocks when full
        var raw = new RawReceiver(rx2.TakeOwnership());
        Assert.Equal((int)Status.Ok, (await RecvAndWaitAsync(raw).Within("first message")).Status);

        await owner.ShutdownAsync().AsTask().Within(".NET shutdown");
        Assert.Equal(Status.Shutdown, (await consumer.Within($"{native} consumer")).Status);
        AgentReport sent = await producer.Within($"{native} producer");
        Assert.Equal(Status.Shutdown, sent.Status);
        Assert.InRange(sent.Messages, 1UL, 2UL); // one received above, at most one more buffered

        tx.Dispose();
        Assert.Equal((int)Status.Ok, raw.Release()); // release stays valid after shutdown
        Assert.Equal(0, owner.LiveChannelCount);
        OpRecorder.AssertNoFailures();
    }
}
