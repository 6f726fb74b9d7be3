using Xunit;
using static Poc.Bridge.Tests.ExportTestHarness;

namespace Poc.Bridge.Tests;

/// <summary>The .NET agents (producer, consumer, echo) on .NET-owned channels: reports, order
/// checks, cancellation, shutdown, port ownership.</summary>
public sealed class DotNetAgentTests
{
    [Fact]
    public async Task ProducerAndConsumer_OnADotNetChannel_ReportsMatch()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = rt.CreateChannel(4);
        Task<AgentReport> consumer = rt.RunConsumerAsync(rx);
        Task<AgentReport> producer = rt.RunProducerAsync(tx, stream: 3, count: 5000, payloadLength: 37);
        Assert.False(tx.IsOwned, "the producer took the sender");
        Assert.False(rx.IsOwned, "the consumer took the receiver");

        AgentReport sent = await producer.Within("producer");
        AgentReport got = await consumer.Within("consumer (ends when the producer released the last sender)");
        Assert.Equal(new AgentReport(Status.Ok, 5000, sent.Checksum, 0), sent);
        Assert.Equal(new AgentReport(Status.Ok, 5000, sent.Checksum, 0), got);
        Assert.Equal(ExpectedChecksum(3, 5000, 37), sent.Checksum);
        Assert.Equal(0, rt.LiveChannelCount); // every port was released
    }

    [Fact]
    public async Task Producer_ZeroCountAndEmptyPayloads_CloseTheChannelAndReportZero()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = rt.CreateChannel(1);
        Task<AgentReport> consumer = rt.RunConsumerAsync(rx);
        Assert.Equal(new AgentReport(Status.Ok, 0, 0, 0), await rt.RunProducerAsync(tx, 1, 0, 0).Within("producer"));
        Assert.Equal(new AgentReport(Status.Ok, 0, 0, 0), await consumer.Within("consumer"));

        var (tx2, rx2) = rt.CreateChannel(1);
        consumer = rt.RunConsumerAsync(rx2);
        AgentReport sent = await rt.RunProducerAsync(tx2, 2, 100, 0).Within("producer of empty payloads");
        Assert.Equal(sent with { OrderErrors = 0 }, await consumer.Within("consumer"));
        Assert.Equal(ExpectedChecksum(2, 100, 0), sent.Checksum);
    }

    [Fact]
    public async Task Consumer_FanInFromClonedSenders_ChecksEveryStreamSeparately()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = rt.CreateChannel(2);
        SenderPort[] senders = [tx, tx.Clone(), tx.Clone()];
        Task<AgentReport> consumer = rt.RunConsumerAsync(rx);
        AgentReport[] sent = await Task.WhenAll(senders.Select((s, i) => rt.RunProducerAsync(s, (ulong)i + 10, 1500, 8)))
            .Within("producers");
        AgentReport got = await consumer.Within("consumer");
        Assert.All(sent, r => Assert.Equal(Status.Ok, r.Status));
        Assert.Equal(Status.Ok, got.Status);
        Assert.Equal(4500UL, got.Messages);
        Assert.Equal(0UL, got.OrderErrors);
        Assert.Equal(sent.Aggregate(0UL, (sum, r) => unchecked(sum + r.Checksum)), got.Checksum);
    }

    [Fact]
    public async Task Consumer_MessagesOutOfOrderOrWithBrokenPayloads_CountsOrderErrors()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = rt.CreateChannel(16);
        var raw = new RawSender(tx.TakeOwnership());
        ulong Id(ulong seq) => MessageChecksum.MakeId(1, seq);
        Assert.Equal((int)Status.Ok, raw.TrySend(Id(0), Pattern(Id(0), 4)));  // fine
        Assert.Equal((int)Status.Ok, raw.TrySend(Id(2), Pattern(Id(2), 4)));  // skips 1: error
        Assert.Equal((int)Status.Ok, raw.TrySend(Id(1), Pattern(Id(1), 4)));  // after 2: error
        Assert.Equal((int)Status.Ok, raw.TrySend(Id(2), new byte[] { 1, 2, 3 })); // in order, bad payload: error
        Assert.Equal((int)Status.Ok, raw.TrySend(MessageChecksum.MakeId(2, 1))); // a new stream must start at 0: error
        Assert.Equal((int)Status.Ok, raw.Release());
        AgentReport got = await rt.RunConsumerAsync(rx).Within("consumer");
        Assert.Equal(Status.Ok, got.Status);
        Assert.Equal(5UL, got.Messages);
        Assert.Equal(4UL, got.OrderErrors);
    }

    [Fact]
    public async Task Echo_PingPongBetweenTwoChannels_EchoesEverything()
    {
        await using var rt = new DotNetRuntime();
        var (toEcho, echoIn) = rt.CreateChannel(1);
        var (echoOut, fromEcho) = rt.CreateChannel(1);
        Task<AgentReport> consumer = rt.RunConsumerAsync(fromEcho);
        Task<AgentReport> echo = rt.RunEchoAsync(echoIn, echoOut);
        AgentReport sent = await rt.RunProducerAsync(toEcho, 4, 2000, 16).Within("producer");
        AgentReport echoed = await echo.Within("echo (ends when its input closes)");
        AgentReport got = await consumer.Within("consumer (ends when the echo released its sender)");
        Assert.Equal(new AgentReport(Status.Ok, 2000, sent.Checksum, 0), echoed);
        Assert.Equal(new AgentReport(Status.Ok, 2000, sent.Checksum, 0), got);
    }

    [Fact]
    public async Task Consumer_CancelledByItsToken_ReportsCancelledAndReleasesItsPort()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = rt.CreateChannel(1);
        using var cts = new CancellationTokenSource();
        Task<AgentReport> consumer = rt.RunConsumerAsync(rx, cts.Token);
        await cts.CancelAsync();
        AgentReport got = await consumer.Within("cancelled consumer");
        Assert.Equal(Status.Cancelled, got.Status);
        // The consumer released the receiver: sends now fail as closed.
        var raw = new RawSender(tx.TakeOwnership());
        Assert.Equal((int)Status.Closed, raw.TrySend(1));
        Assert.Equal((int)Status.Ok, raw.Release());
    }

    [Fact]
    public async Task Producer_ReceiverClosed_ReportsClosed()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = rt.CreateChannel(1);
        rx.Close();
        AgentReport sent = await rt.RunProducerAsync(tx, 1, 10, 1).Within("producer into a closed channel");
        Assert.Equal(new AgentReport(Status.Closed, 0, 0, 0), sent);
        rx.Dispose();
    }

    [Fact]
    public async Task Shutdown_WithBlockedAgents_StopsThemWithShutdownAndRefusesNewOnes()
    {
        var rt = new DotNetRuntime();
        var (tx, rx) = rt.CreateChannel(1);
        var (tx2, rx2) = rt.CreateChannel(1);
        var filler = new RawSender(tx2.Clone().TakeOwnership());
        Assert.Equal((int)Status.Ok, filler.TrySend(99)); // full: the producer's first send waits
        Task<AgentReport> consumer = rt.RunConsumerAsync(rx);            // waits for a message forever
        Task<AgentReport> producer = rt.RunProducerAsync(tx2, 1, 10, 4); // blocks on the full channel
        await rt.ShutdownAsync().AsTask().Within("shutdown (waits for the agents)");
        Assert.Equal(Status.Shutdown, (await consumer.Within("consumer")).Status);
        AgentReport sent = await producer.Within("producer");
        Assert.Equal(new AgentReport(Status.Shutdown, 0, 0, 0), sent); // stopped before or while waiting

        Assert.True(rt.IsShutdown);
        Assert.Throws<InteropException>(() => { _ = rt.RunConsumerAsync(rx2); }); // synchronously
        Assert.True(rx2.IsOwned, "a refused agent does not take its port");
        tx.Dispose();
        rx2.Dispose();
        Assert.Equal((int)Status.Ok, filler.Release());
        await rt.DisposeAsync();
    }

    [Fact]
    public async Task RunAgent_PortAlreadyHandedOver_ThrowsAndTakesNothing()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = rt.CreateChannel(1);
        tx.Dispose();
        Assert.Throws<ObjectDisposedException>(() => { _ = rt.RunProducerAsync(tx, 1, 1, 1); }); // synchronously
        Assert.Throws<ObjectDisposedException>(() => { _ = rt.RunEchoAsync(rx, tx); }); // synchronously
        Assert.True(rx.IsOwned, "echo refused before taking its receiver");
        rx.Dispose();
    }

    /// <summary>Checksum of what a producer of <paramref name="count"/> messages sends.</summary>
    internal static ulong ExpectedChecksum(ulong stream, ulong count, int payloadLength)
    {
        ulong sum = 0;
        for (ulong seq = 0; seq < count; seq++)
        {
            ulong id = MessageChecksum.MakeId(stream, seq);
            sum = unchecked(sum + MessageChecksum.Of(id, Pattern(id, payloadLength)));
        }
        return sum;
    }
}
