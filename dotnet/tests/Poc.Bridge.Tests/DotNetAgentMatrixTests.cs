using Xunit;
using static Poc.Bridge.Tests.ExportTestHarness;

namespace Poc.Bridge.Tests;

/// <summary>The .NET echo agent between channels owned by any runtimes, and the .NET consumer
/// cancelled on a foreign channel. The producer × channel owner × consumer combinations (transfer,
/// close, cancellation, the owner's shutdown) are ConformanceTestBase's.</summary>
public sealed class DotNetAgentMatrixTests(BridgeRuntimesFixture runtimes) : IClassFixture<BridgeRuntimesFixture>
{
    public static TheoryData<string, string> OwnerPairs()
    {
        var data = new TheoryData<string, string>();
        foreach (string a in BridgeRuntimesFixture.Names)
        foreach (string b in BridgeRuntimesFixture.Names)
            data.Add(a, b);
        return data;
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

    public static TheoryData<string> NativeOwners => new() { "C++", "Rust" };
}
