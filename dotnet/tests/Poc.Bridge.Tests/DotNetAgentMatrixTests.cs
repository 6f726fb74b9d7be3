using Xunit;
using static Poc.Bridge.Tests.ExportTestHarness;

namespace Poc.Bridge.Tests;

/// <summary>The .NET agents against channels owned by C++, Rust and .NET, and native agents
/// against .NET channels: every producer × channel owner × consumer combination that involves .NET.</summary>
public sealed class DotNetAgentMatrixTests(BridgeRuntimesFixture runtimes) : IClassFixture<BridgeRuntimesFixture>
{
    public static TheoryData<string, string, string> CombinationsWithDotNet()
    {
        var data = new TheoryData<string, string, string>();
        foreach (string p in BridgeRuntimesFixture.Names)
        foreach (string o in BridgeRuntimesFixture.Names)
        foreach (string c in BridgeRuntimesFixture.Names)
            if (p == ".NET" || o == ".NET" || c == ".NET") data.Add(p, o, c);
        return data;
    }

    public static TheoryData<string, string> OwnerPairs()
    {
        var data = new TheoryData<string, string>();
        foreach (string a in BridgeRuntimesFixture.Names)
        foreach (string b in BridgeRuntimesFixture.Names)
            data.Add(a, b);
        return data;
    }

    [Theory]
    [MemberData(nameof(CombinationsWithDotNet))]
    public async Task ProducerChannelConsumer_AnyCombination_ReportsMatch(string producer, string owner, string consumer)
    {
        var (tx, rx) = runtimes[owner].CreateChannel(2);
        Task<AgentReport> received = runtimes[consumer].RunConsumerAsync(rx);
        AgentReport sent = await runtimes[producer].RunProducerAsync(tx, stream: 5, count: 3000, payloadLength: 19)
            .Within($"{producer} producer into a {owner} channel");
        AgentReport got = await received.Within($"{consumer} consumer of a {owner} channel");
        Assert.Equal(new AgentReport(Status.Ok, 3000, DotNetAgentTests.ExpectedChecksum(5, 3000, 19), 0), sent);
        Assert.Equal(sent, got);
    }

    [Theory]
    [MemberData(nameof(OwnerPairs))]
    public async Task DotNetEcho_ChannelsOwnedByAnyRuntimes_EchoesEverything(string inOwner, string outOwner)
    {
        var (toEcho, echoIn) = runtimes[inOwner].CreateChannel(1);
        var (echoOut, fromEcho) = runtimes[outOwner].CreateChannel(1);
        Task<AgentReport> received = runtimes.Cpp.RunConsumerAsync(fromEcho);
        Task<AgentReport> echoed = runtimes.DotNet.RunEchoAsync(echoIn, echoOut);
        AgentReport sent = await runtimes.Rust.RunProducerAsync(toEcho, 9, 2000, 12).Within("Rust producer");
        Assert.Equal(new AgentReport(Status.Ok, 2000, sent.Checksum, 0), await echoed.Within(".NET echo"));
        Assert.Equal(new AgentReport(Status.Ok, 2000, sent.Checksum, 0), await received.Within("C++ consumer"));
    }

    [Theory]
    [MemberData(nameof(NativeOwners))]
    public async Task DotNetConsumer_CancelledOnAForeignChannel_ReportsCancelledAndClosesIt(string owner)
    {
        var (tx, rx) = runtimes[owner].CreateChannel(1);
        using var cts = new CancellationTokenSource();
        Task<AgentReport> consumer = runtimes.DotNet.RunConsumerAsync(rx, cts.Token);
        await cts.CancelAsync();
        Assert.Equal(Status.Cancelled, (await consumer.Within(".NET consumer")).Status);
        // Its receiver was released: the producer fails with CLOSED instead of waiting forever.
        AgentReport sent = await runtimes[owner].RunProducerAsync(tx, 1, 10, 1).Within($"{owner} producer");
        Assert.Equal(Status.Closed, sent.Status);
    }

    [Theory]
    [MemberData(nameof(NativeOwners))]
    public async Task DotNetProducer_ForeignRuntimeShutsDown_ReportsShutdown(string owner)
    {
        await using IBridgeRuntime native = owner == "C++" ? new CppRuntime() : new RustRuntime();
        var (tx, rx) = native.CreateChannel(1);
        Task<AgentReport> producer = runtimes.DotNet.RunProducerAsync(tx, 1, 100, 4); // blocks once full
        await native.ShutdownAsync().AsTask().Within($"{owner} shutdown");
        AgentReport sent = await producer.Within(".NET producer");
        Assert.Equal(Status.Shutdown, sent.Status);
        Assert.InRange(sent.Messages, 0UL, 1UL);
        rx.Dispose();
    }

    public static TheoryData<string> NativeOwners => new() { "C++", "Rust" };
}
