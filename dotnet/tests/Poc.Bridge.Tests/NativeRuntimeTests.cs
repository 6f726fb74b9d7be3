using System.Threading.Channels;
using Xunit;
using static Poc.Bridge.Tests.ImportTestSupport;

namespace Poc.Bridge.Tests;

/// <summary>
/// <see cref="CppRuntime"/> and <see cref="RustRuntime"/>: echo agents, agent cancellation, shutdown
/// and disposal, and what happens to ports when an agent cannot start. Each test gets a fresh C++ and
/// a fresh Rust runtime. Producer → channel → consumer transfers, close, producer cancellation races
/// and the owner's shutdown, over every combination of runtimes: ConformanceTestBase.
/// </summary>
public sealed class NativeRuntimeTests : IAsyncLifetime
{
    private readonly Dictionary<string, IBridgeRuntime> _runtimes = new();

    public static TheoryData<string> Natives => new() { "C++", "Rust" };

    public static TheoryData<string, string> NativePairs => new() { { "C++", "C++" }, { "C++", "Rust" }, { "Rust", "C++" }, { "Rust", "Rust" } };

    public Task InitializeAsync()
    {
        _runtimes["C++"] = new CppRuntime(threads: 2);
        _runtimes["Rust"] = new RustRuntime(threads: 2);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (IBridgeRuntime runtime in _runtimes.Values) await runtime.DisposeAsync().Within($"disposing the {runtime.Name} runtime");
    }

    [Theory]
    [MemberData(nameof(NativePairs))]
    public async Task RunEchoAsync_DotNetWriterAndReader_RoundTripsEveryMessage(string echo, string owner)
    {
        const int Count = 500;
        var (toEcho, echoIn) = _runtimes[owner].CreateChannel(capacity: 1);
        var (echoOut, fromEcho) = _runtimes[owner].CreateChannel(capacity: 1);
        Task<AgentReport> echoing = _runtimes[echo].RunEchoAsync(echoIn, echoOut);
        ChannelWriter<Message> writer = toEcho.ToWriter();
        ChannelReader<Message> reader = fromEcho.ToReader();

        ulong checksum = 0;
        for (int seq = 0; seq < Count; seq++)
        {
            Message m = PatternMessage(31, (ulong)seq, seq % 50);
            await writer.WriteAsync(m).Within("a write to the echo");
            Message back = await reader.ReadAsync().Within("the echoed message");
            Assert.Equal(m.Id, back.Id);
            Assert.Equal(m.Payload.ToArray(), back.Payload.ToArray());
            checksum += m.Checksum();
        }
        writer.Complete(); // the echo sees CLOSED, ends, and releases its sender: the reader ends too

        Assert.False(await reader.WaitToReadAsync().Within("the end of the echoed stream"));
        AssertReport(await echoing.Within($"the {echo} echo"), Count, checksum, $"{echo} echo");
    }

    [Theory]
    [MemberData(nameof(Natives))]
    public async Task RunConsumerAsync_TokenCancelled_ReportsCancelled(string name)
    {
        IBridgeRuntime runtime = _runtimes[name];
        var (tx, rx) = runtime.CreateChannel(capacity: 4);
        using var cts = new CancellationTokenSource();

        Task<AgentReport> consuming = runtime.RunConsumerAsync(rx, cts.Token);
        cts.Cancel();
        AgentReport report = await consuming.Within($"the cancelled {name} consumer");
        Assert.Equal(Status.Cancelled, report.Status);
        tx.Dispose();
    }

    [Theory]
    [MemberData(nameof(NativePairs))]
    public async Task RunProducerAsync_TokenCancelledWhileBlocked_ReportsCancelled(string agent, string owner)
    {
        var (tx, rx) = _runtimes[owner].CreateChannel(capacity: 1);
        using var cts = new CancellationTokenSource();
        ChannelReader<Message> reader = rx.ToReader();

        Task<AgentReport> producing = _runtimes[agent].RunProducerAsync(tx, stream: 1, count: 1_000_000, payloadLength: 4, cts.Token);
        await reader.ReadAsync().Within("the first message"); // the producer runs (and soon blocks on the full channel)
        cts.Cancel();
        AgentReport report = await producing.Within($"the cancelled {agent} producer");
        Assert.Equal(Status.Cancelled, report.Status);
        Assert.InRange(report.Messages, 1UL, 999_999UL);
        ((IDisposable)reader).Dispose();
    }

    [Theory]
    [MemberData(nameof(Natives))]
    public async Task ShutdownAsync_AgentRunning_EndsTheAgent(string name)
    {
        IBridgeRuntime runtime = _runtimes[name];
        var (tx, rx) = runtime.CreateChannel(capacity: 4);
        Task<AgentReport> consuming = runtime.RunConsumerAsync(rx);

        await runtime.ShutdownAsync().Within($"the {name} shutdown");
        AgentReport report = await consuming.Within($"the {name} consumer");
        Assert.Contains(report.Status, new[] { Status.Cancelled, Status.Shutdown });
        tx.Dispose();
    }

    [Theory]
    [MemberData(nameof(Natives))]
    public async Task StartAndCreate_AfterShutdown_ThrowShutdownAndLeaveThePortsWithTheCaller(string name)
    {
        IBridgeRuntime runtime = _runtimes[name];
        IBridgeRuntime other = _runtimes[name == "C++" ? "Rust" : "C++"];
        var (tx, rx) = other.CreateChannel(capacity: 4);
        await runtime.ShutdownAsync().Within($"the {name} shutdown");
        await runtime.ShutdownAsync().Within($"the second {name} shutdown"); // idempotent

        Assert.Equal(Status.Shutdown, Assert.Throws<InteropException>(() => runtime.CreateChannel(4)).Status);
        Assert.Equal(Status.Shutdown, (await Assert.ThrowsAsync<InteropException>(() => runtime.RunProducerAsync(tx, 1, 10, 4))).Status);
        Assert.Equal(Status.Shutdown, (await Assert.ThrowsAsync<InteropException>(() => runtime.RunConsumerAsync(rx))).Status);
        Assert.Equal(Status.Shutdown, (await Assert.ThrowsAsync<InteropException>(() => runtime.RunEchoAsync(rx, tx))).Status);
        Assert.True(tx.IsOwned, "a failed start leaves the sender with the caller");
        Assert.True(rx.IsOwned, "a failed start leaves the receiver with the caller");

        // The ports are intact: the other runtime's agents can still use them.
        Task<AgentReport> consuming = other.RunConsumerAsync(rx);
        AgentReport sent = await other.RunProducerAsync(tx, stream: 3, count: 100, payloadLength: 4).Within("the producer");
        AssertReport(await consuming.Within("the consumer"), 100, sent.Checksum, $"{other.Name} consumer");
    }

    [Theory]
    [MemberData(nameof(Natives))]
    public async Task Calls_AfterDispose_ThrowObjectDisposedAndLeaveThePortsWithTheCaller(string name)
    {
        IBridgeRuntime runtime = CreateNative(name);
        var (tx, rx) = _runtimes[name == "C++" ? "Rust" : "C++"].CreateChannel(capacity: 4);
        await runtime.DisposeAsync().Within($"disposing the {name} runtime");
        await runtime.DisposeAsync().Within($"disposing the {name} runtime again");
        await runtime.ShutdownAsync().Within($"shutting down the disposed {name} runtime");

        Assert.Throws<ObjectDisposedException>(() => runtime.CreateChannel(4));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => runtime.RunConsumerAsync(rx));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => runtime.RunProducerAsync(tx, 1, 1, 1));
        Assert.True(tx.IsOwned);
        Assert.True(rx.IsOwned);
        tx.Dispose();
        rx.Dispose();
    }

    [Theory]
    [MemberData(nameof(Natives))]
    public async Task RunAgent_PortHandedOverAlready_ThrowsObjectDisposed(string name)
    {
        IBridgeRuntime runtime = _runtimes[name];
        var (tx, rx) = runtime.CreateChannel(capacity: 4);
        ChannelWriter<Message> writer = tx.ToWriter();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => runtime.RunProducerAsync(tx, 1, 1, 1));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => runtime.RunEchoAsync(rx, tx));
        Assert.True(rx.IsOwned, "the echo start failed on the sender: the receiver stays with the caller");
        writer.Complete();
        rx.Dispose();
    }

    [Theory]
    [MemberData(nameof(Natives))]
    public void Constructor_ThreadCountOutOfRange_ThrowsArgumentOutOfRange(string name)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CreateNative(name, threads: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => CreateNative(name, threads: 65));
    }

    [Theory]
    [MemberData(nameof(Natives))]
    public void CreateChannel_BadArguments_ThrowArgumentOutOfRange(string name)
    {
        IBridgeRuntime runtime = _runtimes[name];
        Assert.Equal(name, runtime.Name);
        Assert.Throws<ArgumentOutOfRangeException>(() => runtime.CreateChannel(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => runtime.CreateChannel(1, maxPayload: -1));
    }
}
