using System.Text;
using System.Threading.Channels;
using Xunit;

namespace Poc.Bridge.Tests;

/// <summary><see cref="CppRuntime.RunTimerAsync"/>: mayon's C++ timer task through the public API.</summary>
public sealed class CppTimerAgentTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Timer_WithMaxCount_SendsExactlyThatManyInOrder_AndEndsOk()
    {
        await using var cpp = new CppRuntime();
        await using var dotnet = new DotNetRuntime();
        var (tx, rx) = dotnet.CreateChannel(capacity: 1);
        Task<AgentReport> timer = cpp.RunTimerAsync(tx, TimeSpan.FromMilliseconds(1), maxCount: 5);
        ChannelReader<Message> reader = rx.ToReader();
        var ids = new List<ulong>();
        ulong checksum = 0;
        using var bound = new CancellationTokenSource(Bound);
        await foreach (Message m in reader.ReadAllAsync(bound.Token))
        {
            Assert.Equal("From Cpp async task!!", Encoding.UTF8.GetString(m.Payload.Span));
            ids.Add(m.Id);
            checksum = unchecked(checksum + m.Checksum());
        }
        AgentReport report = await timer.WaitAsync(Bound);
        Assert.Equal(new ulong[] { 0, 1, 2, 3, 4 }, ids);
        Assert.Equal(Status.Ok, report.Status);
        Assert.Equal(5UL, report.Messages);
        Assert.Equal(checksum, report.Checksum);
    }

    [Fact]
    public async Task Timer_Cancelled_EndsCancelled_AndReportsWhatItSent()
    {
        await using var cpp = new CppRuntime();
        await using var rust = new RustRuntime();
        var (tx, rx) = rust.CreateChannel(capacity: 4);
        using var cts = new CancellationTokenSource();
        Task<AgentReport> timer = cpp.RunTimerAsync(tx, TimeSpan.FromMilliseconds(1), cancellationToken: cts.Token);
        ChannelReader<Message> reader = rx.ToReader();
        Message first = await reader.ReadAsync().AsTask().WaitAsync(Bound);
        Assert.Equal(0UL, first.Id);
        cts.Cancel();
        AgentReport report = await timer.WaitAsync(Bound);
        ulong received = 1;
        using var bound = new CancellationTokenSource(Bound);
        await foreach (Message m in reader.ReadAllAsync(bound.Token))
        {
            Assert.Equal(received, m.Id);
            received++;
        }
        Assert.Equal(Status.Cancelled, report.Status);
        Assert.Equal(received, report.Messages);
    }

    [Fact]
    public async Task Timer_BadArguments_AreRejectedAtTheCall()
    {
        await using var cpp = new CppRuntime();
        var (tx, _) = cpp.CreateChannel(capacity: 1);
        Assert.Throws<ArgumentOutOfRangeException>(() => { _ = cpp.RunTimerAsync(tx, TimeSpan.FromMilliseconds(-1)); });
        Assert.Throws<ArgumentNullException>(() => { _ = cpp.RunTimerAsync(null!, TimeSpan.Zero); });
    }
}
