using System.Threading.Channels;
using Poc.Bridge.Import;
using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;
using static Poc.Bridge.Tests.ImportTestSupport;

namespace Poc.Bridge.Tests;

/// <summary>The runtime that plays one role (producer, channel owner, consumer) of a conformance case.</summary>
public enum RuntimeKind
{
    /// <summary><see cref="CppRuntime"/>: Asio.</summary>
    Cpp,
    /// <summary><see cref="RustRuntime"/>: tokio.</summary>
    Rust,
    /// <summary><see cref="DotNetRuntime"/>: tasks and System.Threading.Channels.</summary>
    DotNet,
}

/// <summary>
/// The cross-runtime conformance suite: the producer agent of one runtime sends through a channel
/// owned by a second runtime to the consumer agent of a third. ConformanceMatrix.cs runs it over all
/// 3 × 3 × 3 combinations, one sealed subclass per combination named after it, so every case says
/// which combination it ran (the shape of dotnet/runtime's <c>ChannelTestBase</c>).
/// </summary>
/// <remarks>
/// <para>Each case checks what docs/contract.md promises whatever the combination: order, count and
/// checksum under backpressure at capacity 1; close (release of the last sender) and drain; a
/// producer cancelled mid-stream loses and duplicates nothing; the owner's shutdown ends every agent
/// that waits on its channels. Agents report what they did (<see cref="AgentReport"/>), so the checks
/// compare the producer's report with the consumer's.</para>
/// <para>Runtimes: the cases share one C++, one Rust and one .NET runtime with the whole matrix
/// (<see cref="ConformanceCollection"/>; the matrix runs one case at a time). The shutdown case makes
/// its own, since it stops one. A role played by the same runtime kind twice is played by the same
/// runtime object, as an application would do it.</para>
/// <para>Every wait is bounded (<see cref="Limit"/>) and fails naming the combination and what did not
/// finish; nothing sleeps to synchronise and no assertion depends on timing.</para>
/// </remarks>
[Collection(ConformanceCollection.Name)]
public abstract class ConformanceTestBase
{
    /// <summary>How long any single wait may take before the case fails.</summary>
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    private readonly BridgeRuntimesFixture _shared;
    private readonly ITestOutputHelper _output;
    private readonly RuntimeKind _producer;
    private readonly RuntimeKind _owner;
    private readonly RuntimeKind _consumer;

    /// <summary>A case of the combination <paramref name="producer"/> × <paramref name="owner"/> ×
    /// <paramref name="consumer"/>; the subclass's name must say it
    /// (<c>Conformance_{Producer}Producer_{Owner}Channel_{Consumer}Consumer</c>).</summary>
    protected ConformanceTestBase(BridgeRuntimesFixture shared, ITestOutputHelper output,
        RuntimeKind producer, RuntimeKind owner, RuntimeKind consumer)
    {
        _shared = shared;
        _output = output;
        _producer = producer;
        _owner = owner;
        _consumer = consumer;
        Combination = $"{NameOf(producer)} producer → {NameOf(owner)} channel → {NameOf(consumer)} consumer";
        // A case name that says another combination than the one it runs would be worse than none.
        string expected = ClassNameOf(producer, owner, consumer);
        if (GetType().Name != expected)
            throw new InvalidOperationException($"{GetType().Name} runs {Combination}: it must be named {expected}.");
    }

    /// <summary>The combination, for messages: "C++ producer → Rust channel → .NET consumer".</summary>
    protected string Combination { get; }

    /// <summary>The class name of the case for a combination.</summary>
    internal static string ClassNameOf(RuntimeKind producer, RuntimeKind owner, RuntimeKind consumer) =>
        $"Conformance_{producer}Producer_{owner}Channel_{consumer}Consumer";

    /// <summary>Backpressure: with room for one message only, the producer waits for the consumer at
    /// nearly every send, across the two runtime boundaries; nothing is dropped, reordered or altered.</summary>
    [Fact]
    public async Task Transfer_CapacityOne_KeepsOrderCountAndChecksum()
    {
        const ulong Stream = 11, Count = 2000;
        const int PayloadLength = 64;
        var expected = new AgentReport(Status.Ok, Count, DotNetAgentTests.ExpectedChecksum(Stream, Count, PayloadLength), 0);
        var (tx, rx) = _shared[NameOf(_owner)].CreateChannel(capacity: 1);

        Task<AgentReport> consuming = _shared[NameOf(_consumer)].RunConsumerAsync(rx);
        Task<AgentReport> producing = _shared[NameOf(_producer)].RunProducerAsync(tx, Stream, Count, PayloadLength);
        Assert.False(tx.IsOwned, $"{Combination}: the started producer took the sender");
        Assert.False(rx.IsOwned, $"{Combination}: the started consumer took the receiver");

        AgentReport sent = await WithinLimit(producing, "the producer of 2000 messages");
        AgentReport received = await WithinLimit(consuming, "the consumer (it ends when the producer released the last sender)");
        AssertReport(expected, sent, "producer");
        AssertReport(expected, received, "consumer");
    }

    /// <summary>Close and drain (contract, "Close and release" 1–2): the producer ends before the
    /// consumer exists, releasing the last sender closes the channel with everything still queued, and
    /// the consumer then gets every message before it sees CLOSED (it reports OK only after CLOSED).</summary>
    [Fact]
    public async Task Close_ProducerFinishesBeforeConsumerStarts_ConsumerDrainsThenSeesClosed()
    {
        const ulong Stream = 12, Count = 300;
        const int PayloadLength = 13; // not a multiple of 8: the checksum's zero-padded last word
        var expected = new AgentReport(Status.Ok, Count, DotNetAgentTests.ExpectedChecksum(Stream, Count, PayloadLength), 0);
        var (tx, rx) = _shared[NameOf(_owner)].CreateChannel(capacity: (int)Count);

        AgentReport sent = await WithinLimit(_shared[NameOf(_producer)].RunProducerAsync(tx, Stream, Count, PayloadLength),
            "the producer (the channel has room for all it sends)");
        AssertReport(expected, sent, "producer");

        AgentReport received = await WithinLimit(_shared[NameOf(_consumer)].RunConsumerAsync(rx),
            "the consumer of a closed channel holding 300 messages");
        AssertReport(expected, received, "consumer");
    }

    /// <summary>How the cancellation case picks the moment it cancels the producer: before it starts,
    /// right after its start call returned, or after a few milliseconds of traffic (a varying point, not
    /// a synchronisation: every outcome must pass the same checks).</summary>
    private static readonly int[] CancelAfterMilliseconds = [-1, 0, 1, 2, 3, 5, 8];

    /// <summary>Cancellation races (contract, "Cancel" 1–3): the producer is cancelled through its token
    /// while it sends into a full capacity-1 channel — its send in flight is cancelled and either wins
    /// (enqueued, then counted) or loses (never enqueued, never counted). Its report must therefore
    /// count exactly the messages that reached the consumer: same number, same checksum, in order.</summary>
    /// <remarks>Only the producer side is raced. A consumer stopped mid-stream releases its receiver,
    /// and releasing a receiver drops what is still queued (contract, "Close and release" 3); the
    /// agents have no way to hand queued messages on, so a consumer-side race could only check that the
    /// consumer counted an in-order prefix — "no loss" does not hold there by contract.</remarks>
    [Fact]
    public async Task Cancellation_ProducerCancelledMidStream_EveryEnqueuedMessageIsConsumedOnce()
    {
        const ulong Stream = 13, Count = 1_000_000; // far more than fits before any cancel point
        const int PayloadLength = 24;
        (long Strays, long Contained) before = (ImportDiagnostics.StrayCallbacks, ImportDiagnostics.ContainedExceptions);
        var failures = new List<string>();

        foreach (int cancelAfter in CancelAfterMilliseconds)
        {
            string point = cancelAfter switch
            {
                < 0 => "a token cancelled before the start",
                0 => "a cancel right after the start",
                _ => $"a cancel after {cancelAfter} ms",
            };
            var (tx, rx) = _shared[NameOf(_owner)].CreateChannel(capacity: 1);
            using var cts = new CancellationTokenSource();
            if (cancelAfter < 0) cts.Cancel();

            // The consumer first: it is waiting before the first message exists, and it drains until
            // the cancelled producer's release of the last sender closes the channel.
            Task<AgentReport> consuming = _shared[NameOf(_consumer)].RunConsumerAsync(rx);
            Task<AgentReport> producing = _shared[NameOf(_producer)].RunProducerAsync(tx, Stream, Count, PayloadLength, cts.Token);
            if (cancelAfter == 0) cts.Cancel();
            else if (cancelAfter > 0) cts.CancelAfter(cancelAfter);

            AgentReport sent = await WithinLimit(producing, $"the producer after {point}");
            AgentReport received = await WithinLimit(consuming, $"the consumer after {point} (it ends when the producer released its sender)");
            _output.WriteLine($"{Combination}, {point}: producer {sent}, consumer {received}");

            if (sent.Status != Status.Cancelled) failures.Add($"{point}: the producer ended with {sent.Status}, expected Cancelled");
            if (received.Status != Status.Ok) failures.Add($"{point}: the consumer ended with {received.Status}, expected Ok (drained, then CLOSED)");
            if (received.OrderErrors != 0) failures.Add($"{point}: the consumer saw {received.OrderErrors} order errors");
            if (received.Messages != sent.Messages || received.Checksum != sent.Checksum)
                failures.Add($"{point}: the producer reported {sent.Messages} messages (checksum {sent.Checksum:X16}), the consumer "
                    + $"received {received.Messages} (checksum {received.Checksum:X16}); every enqueued message must be counted once by each");
        }

        AssertEveryCallbackRanOnce(before);
        Assert.True(failures.Count == 0, $"{Combination}:{Environment.NewLine}{string.Join(Environment.NewLine, failures)}");
    }

    /// <summary>Shutdown with pending ops (contract, "Shutdown" 1–3), on runtimes of its own: the
    /// producer waits on a full channel of the owner, the consumer on an empty one, then the owner shuts
    /// down. Both end without a hang, saying why; the owner refuses new channels.</summary>
    /// <remarks>
    /// <para>Allowed statuses, per role: exactly <see cref="Status.Shutdown"/> for both. An agent of
    /// another runtime sees its pending op complete with SHUTDOWN (or its next call answered SHUTDOWN);
    /// an agent of the owner itself is stopped by the shutdown, and every runtime reports that as
    /// SHUTDOWN too (bridge.h "Agents": CANCELLED is only for <c>poc_*_agent_cancel</c>, i.e. a token).
    /// CLOSED cannot occur: the test holds the far end of both channels until the end.</para>
    /// <para>The test proves the agents run before it shuts the owner down. It reads the producer's
    /// first message; the producer then fills the channel again and waits for room. It writes the
    /// consumer three messages: the first may go straight to the consumer's waiting receive, the
    /// second then fills the channel, and the third finds room only when the consumer has received
    /// again — which it does only after counting the first; then it waits for a fourth.</para>
    /// <para>Counts: only what the agent itself counted is exact. A message that the owner had handed
    /// to a pending receive when it stopped may be dropped with the rest of the channel (the receive
    /// completes with SHUTDOWN), so the bounds below follow from the handshake, not from what was
    /// written.</para>
    /// </remarks>
    [Fact]
    public async Task Shutdown_OwnerStopsWhileOpsArePending_EveryAgentEndsWithoutHang()
    {
        const ulong ProducerStream = 14, ConsumerStream = 15, Count = 1_000_000;
        const int PayloadLength = 8;
        (long Strays, long Contained) before = (ImportDiagnostics.StrayCallbacks, ImportDiagnostics.ContainedExceptions);
        await using var fresh = new FreshRuntimes();
        IBridgeRuntime owner = fresh[_owner];
        var (toProducerChannel, fromProducer) = owner.CreateChannel(capacity: 1);
        var (toConsumer, consumerChannel) = owner.CreateChannel(capacity: 1);
        ChannelReader<Message> reader = fromProducer.ToReader();
        ChannelWriter<Message> writer = toConsumer.ToWriter();
        try
        {
            Task<AgentReport> producing = fresh[_producer].RunProducerAsync(toProducerChannel, ProducerStream, Count, PayloadLength);
            Task<AgentReport> consuming = fresh[_consumer].RunConsumerAsync(consumerChannel);

            Message first = await WithinLimit(reader.ReadAsync().AsTask(), "the test's read of the producer's first message");
            Assert.Equal(MessageChecksum.MakeId(ProducerStream, 0), first.Id);
            for (ulong seq = 0; seq < 3; seq++)
                await WithinLimit(writer.WriteAsync(PatternMessage(ConsumerStream, seq, PayloadLength)).AsTask(),
                    $"write {seq + 1} of 3 to the consumer (the third waits until the consumer received twice)");

            await WithinLimit(owner.ShutdownAsync().AsTask(), $"the {NameOf(_owner)} owner's shutdown");
            AgentReport sent = await WithinLimit(producing, "the producer waiting on the owner's full channel");
            AgentReport received = await WithinLimit(consuming, "the consumer waiting on the owner's empty channel");
            _output.WriteLine($"{Combination}: producer {sent}, consumer {received}");

            Assert.True(sent.Status == Status.Shutdown, $"{Combination}: the producer ended with {sent.Status}, expected Shutdown");
            Assert.True(received.Status == Status.Shutdown, $"{Combination}: the consumer ended with {received.Status}, expected Shutdown");
            // The producer counted message 0 (its send into the empty channel completed at once, and
            // the test read it), perhaps message 1 (it filled the channel again), nothing after
            // (nobody read again); what it counted is its stream's prefix.
            AssertPrefix(sent, ProducerStream, PayloadLength, 1, 2, "producer");
            // The consumer counted the first message (it received again after that) and at most the
            // three written to it.
            AssertPrefix(received, ConsumerStream, PayloadLength, 1, 3, "consumer");

            InteropException refused = Assert.Throws<InteropException>(() => owner.CreateChannel(capacity: 1));
            Assert.True(refused.Status == Status.Shutdown, $"{Combination}: CreateChannel after shutdown threw {refused.Status}, expected Shutdown");
            AssertEveryCallbackRanOnce(before);
        }
        finally
        {
            // Release stays valid after shutdown; the agents released their own ports when they ended.
            ((IDisposable)reader).Dispose();
            ((IDisposable)writer).Dispose();
        }
    }

    /// <summary>The name <see cref="BridgeRuntimesFixture"/> and <see cref="IBridgeRuntime.Name"/> use.</summary>
    private static string NameOf(RuntimeKind kind) => kind switch
    {
        RuntimeKind.Cpp => "C++",
        RuntimeKind.Rust => "Rust",
        RuntimeKind.DotNet => ".NET",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a runtime"),
    };

    private void AssertReport(AgentReport expected, AgentReport actual, string role) =>
        Assert.True(expected == actual, $"{Combination}: the {role} reported {actual}, expected {expected}");

    /// <summary>Asserts a report of messages <paramref name="min"/>..<paramref name="max"/> of a stream,
    /// in order, with the checksum of exactly that many.</summary>
    private void AssertPrefix(AgentReport report, ulong stream, int payloadLength, ulong min, ulong max, string role)
    {
        Assert.True(report.Messages >= min && report.Messages <= max,
            $"{Combination}: the {role} counted {report.Messages} messages, expected {min}..{max}");
        Assert.True(report.Checksum == DotNetAgentTests.ExpectedChecksum(stream, report.Messages, payloadLength),
            $"{Combination}: the {role}'s checksum {report.Checksum:X16} is not that of the first {report.Messages} messages");
        Assert.True(report.OrderErrors == 0, $"{Combination}: the {role} saw {report.OrderErrors} order errors");
    }

    /// <summary>Exactly once: a native agent's done callback that runs twice, or a port completion
    /// that runs twice, finds no live operation on the .NET side and is counted as stray; a .NET
    /// callback that threw is counted as contained. Both counters are process-wide and must not move.</summary>
    private void AssertEveryCallbackRanOnce((long Strays, long Contained) before)
    {
        Assert.True(ImportDiagnostics.StrayCallbacks == before.Strays,
            $"{Combination}: {ImportDiagnostics.StrayCallbacks - before.Strays} callback(s) ran more than once");
        Assert.True(ImportDiagnostics.ContainedExceptions == before.Contained,
            $"{Combination}: {ImportDiagnostics.ContainedExceptions - before.Contained} exception(s) in bridge callbacks");
    }

    /// <summary>Awaits <paramref name="task"/> for at most <see cref="Limit"/>; on timeout fails naming
    /// the combination and <paramref name="what"/> did not finish.</summary>
    private async Task<T> WithinLimit<T>(Task<T> task, string what)
    {
        try
        {
            return await task.WaitAsync(Limit);
        }
        catch (TimeoutException) when (!task.IsCompleted)
        {
            throw new XunitException($"{Combination}: {what} did not finish within {Limit.TotalSeconds:0} s.");
        }
    }

    private async Task WithinLimit(Task task, string what)
    {
        try
        {
            await task.WaitAsync(Limit);
        }
        catch (TimeoutException) when (!task.IsCompleted)
        {
            throw new XunitException($"{Combination}: {what} did not finish within {Limit.TotalSeconds:0} s.");
        }
    }

    /// <summary>Runtimes of one case, made on first use (one per kind), disposed together.</summary>
    private sealed class FreshRuntimes : IAsyncDisposable
    {
        private readonly Dictionary<RuntimeKind, IBridgeRuntime> _runtimes = new();

        public IBridgeRuntime this[RuntimeKind kind]
        {
            get
            {
                if (!_runtimes.TryGetValue(kind, out IBridgeRuntime? runtime))
                {
                    runtime = kind switch
                    {
                        RuntimeKind.Cpp => new CppRuntime(threads: 2),
                        RuntimeKind.Rust => new RustRuntime(threads: 2),
                        _ => new DotNetRuntime(),
                    };
                    _runtimes[kind] = runtime;
                }
                return runtime;
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (IBridgeRuntime runtime in _runtimes.Values)
                await runtime.DisposeAsync().AsTask().WaitAsync(Limit);
        }
    }
}

/// <summary>The conformance cases share one runtime of each kind (<see cref="BridgeRuntimesFixture"/>)
/// and run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class ConformanceCollection : ICollectionFixture<BridgeRuntimesFixture>
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Cross-runtime conformance";
}
