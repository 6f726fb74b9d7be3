using System.Threading.Channels;
using Poc.Bridge.Import;
using Xunit;
using Xunit.Abstractions;
using static Poc.Bridge.Tests.ImportTestSupport;

namespace Poc.Bridge.Tests;

/// <summary>
/// The .NET import adapter (<see cref="SenderPort.ToWriter"/>, <see cref="ReceiverPort.ToReader"/>)
/// over channels owned by one runtime; a sealed subclass per owner runs the whole set. The storms
/// use the owner's own agents (<see cref="Agents"/>) as the other end.
/// </summary>
public abstract class ImportConformanceTests : IAsyncLifetime
{
    private readonly ITestOutputHelper _output;
    private IBridgeRuntime? _owner;

    protected ImportConformanceTests(ITestOutputHelper output) => _output = output;

    /// <summary>The runtime that owns the channels of the test.</summary>
    protected IBridgeRuntime Owner => _owner ?? throw new InvalidOperationException("not initialised");

    /// <summary>The runtime whose producer and consumer agents the storms use.</summary>
    protected virtual IBridgeRuntime Agents => Owner;

    protected abstract IBridgeRuntime CreateOwner();

    public virtual Task InitializeAsync()
    {
        _owner = CreateOwner();
        return Task.CompletedTask;
    }

    public virtual async Task DisposeAsync()
    {
        if (_owner is not null) await _owner.DisposeAsync().Within($"disposing the {_owner.Name} runtime");
    }

    [Fact]
    public async Task WriteAsyncReadAsync_CapacityOne_DeliversEveryMessageInOrder()
    {
        const ulong Count = 10_000;
        var (tx, rx) = Owner.CreateChannel(capacity: 1);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();

        Task<ulong> writing = Task.Run(async () =>
        {
            ulong checksum = 0;
            for (ulong seq = 0; seq < Count; seq++)
            {
                Message m = PatternMessage(1, seq, (int)(seq % 37));
                await writer.WriteAsync(m);
                checksum += m.Checksum();
            }
            writer.Complete();
            return checksum;
        });
        Task<(ulong Count, ulong Checksum)> reading = Task.Run(async () =>
        {
            ulong next = 0, checksum = 0;
            while (true)
            {
                Message m;
                try
                {
                    m = await reader.ReadAsync();
                }
                catch (ChannelClosedException)
                {
                    return (next, checksum);
                }
                Assert.Equal(MessageChecksum.MakeId(1, next), m.Id);
                Assert.Equal((int)(next % 37), m.Payload.Length);
                Assert.True(MessageChecksum.CheckPattern(m.Id, m.Payload.Span), $"payload of message {next} is broken");
                checksum += m.Checksum();
                next++;
            }
        });

        ulong sent = await writing.Within("the writer");
        (ulong received, ulong receivedChecksum) = await reading.Within("the reader");
        Assert.Equal(Count, received);
        Assert.Equal(sent, receivedChecksum);
        await reader.Completion.Within("the reader's Completion");
    }

    [Fact]
    public async Task TryWriteTryRead_CapacityTwo_FollowTheChannelState()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 2);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();

        Assert.False(reader.TryRead(out _), "an empty channel has nothing to read");
        Assert.True(writer.TryWrite(PatternMessage(2, 0, 3)));
        Assert.True(writer.TryWrite(PatternMessage(2, 1, 0)));
        Assert.False(writer.TryWrite(PatternMessage(2, 2, 3)), "a full channel refuses TryWrite");

        Assert.True(reader.TryRead(out Message first));
        Assert.Equal(MessageChecksum.MakeId(2, 0), first.Id);
        Assert.Equal(PatternMessage(2, 0, 3).Payload.ToArray(), first.Payload.ToArray());
        Assert.True(reader.TryRead(out Message second));
        Assert.Equal(MessageChecksum.MakeId(2, 1), second.Id);
        Assert.True(second.Payload.IsEmpty);
        Assert.False(reader.TryRead(out _));

        Assert.True(writer.TryComplete());
        Assert.False(reader.TryRead(out _), "closed and drained");
        await reader.Completion.Within("the reader's Completion");
        Assert.False(reader.CanCount);
        Assert.False(reader.CanPeek);
        Assert.Throws<NotSupportedException>(() => reader.Count);
    }

    [Fact]
    public void SynchronousPaths_EmptyPayloads_AllocateNothingPerMessage()
    {
        const int Count = 20_000;
        var (tx, rx) = Owner.CreateChannel(capacity: 64);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();
        RoundTrips(writer, reader, 100); // warm up: pools, op tables, JIT

        // Everything below runs on this thread (deliver is synchronous), so the thread's own
        // allocation counter sees every byte the adapter allocates; an empty payload needs no copy.
        long before = GC.GetAllocatedBytesForCurrentThread();
        RoundTrips(writer, reader, Count);
        long perMessage = (GC.GetAllocatedBytesForCurrentThread() - before) / Count;
        Assert.True(perMessage == 0, $"{perMessage} bytes allocated per message on the synchronous paths");
        writer.Complete();
        ((IDisposable)reader).Dispose();
    }

    private static void RoundTrips(ChannelWriter<Message> writer, ChannelReader<Message> reader, int count)
    {
        // No xunit asserts in the loop: they allocate themselves.
        var empty = new Message(77);
        for (int i = 0; i < count; i++)
        {
            if (!writer.TryWrite(empty)) throw new InvalidOperationException("TryWrite failed with room");
            if (!reader.TryRead(out Message got) || got.Id != 77) throw new InvalidOperationException("TryRead failed");
            ValueTask write = writer.WriteAsync(empty); // room: completes synchronously
            if (!write.IsCompletedSuccessfully) throw new InvalidOperationException("WriteAsync did not complete at once");
            ValueTask<Message> read = reader.ReadAsync(); // queued: completes synchronously
            if (!read.IsCompletedSuccessfully || read.Result.Id != 77) throw new InvalidOperationException("ReadAsync did not complete at once");
        }
    }

    [Fact]
    public async Task ReadAllAsync_WriterCompletes_EndsAtClosed()
    {
        const int Count = 1000;
        var (tx, rx) = Owner.CreateChannel(capacity: 1);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();

        Task writing = Task.Run(async () =>
        {
            for (int seq = 0; seq < Count; seq++) await writer.WriteAsync(PatternMessage(4, (ulong)seq, 8));
            writer.Complete();
        });
        List<Message> messages = await ReadAllAsync(reader).Within("ReadAllAsync");
        await writing.Within("the writer");

        Assert.Equal(Enumerable.Range(0, Count).Select(i => MessageChecksum.MakeId(4, (ulong)i)), messages.Select(m => m.Id));
        await reader.Completion.Within("the reader's Completion");
        await Assert.ThrowsAsync<ChannelClosedException>(() => reader.ReadAsync().AsTask());
        Assert.False(await reader.WaitToReadAsync().Within("WaitToReadAsync after the end"));
        Assert.False(reader.TryRead(out _));
    }

    [Fact]
    public async Task WaitToReadAsync_MessageArrivesLater_ReturnsTrueAndTryReadTakesIt()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 4);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();

        Task<bool> wait = reader.WaitToReadAsync().AsTask();
        Assert.False(wait.IsCompleted, "nothing was written yet");
        await writer.WriteAsync(PatternMessage(3, 0, 5)).Within("the write");
        Assert.True(await wait.Within("WaitToReadAsync"));
        Assert.True(reader.TryRead(out Message m));
        Assert.Equal(MessageChecksum.MakeId(3, 0), m.Id);
        Assert.False(reader.TryRead(out _));
        ((IDisposable)writer).Dispose(); // the last sender: the channel closes
        Assert.False(await reader.WaitToReadAsync().Within("WaitToReadAsync at the end"));
    }

    [Fact]
    public async Task WriteAsync_ClonedWritersConcurrently_DeliversEveryStreamInOrder()
    {
        const int Writers = 3, PerWriter = 1000;
        var (tx, rx) = Owner.CreateChannel(capacity: 2);
        SenderPort[] ports = [tx, .. Enumerable.Range(1, Writers - 1).Select(_ => tx.Clone())];
        ChannelReader<Message> reader = rx.ToReader();

        Task[] writing = ports.Select((port, stream) => Task.Run(async () =>
        {
            ChannelWriter<Message> writer = port.ToWriter();
            for (int seq = 0; seq < PerWriter; seq++) await writer.WriteAsync(PatternMessage((ulong)stream, (ulong)seq, stream));
            ((IDisposable)writer).Dispose(); // releasing the last sender closes the channel
        })).ToArray();
        List<Message> messages = await ReadAllAsync(reader).Within("ReadAllAsync");
        await Task.WhenAll(writing).Within("the writers");

        Assert.Equal(Writers * PerWriter, messages.Count);
        for (int stream = 0; stream < Writers; stream++)
        {
            ulong[] ids = messages.Select(m => m.Id).Where(id => id >> MessageChecksum.StreamShift == (ulong)stream).ToArray();
            Assert.Equal(Enumerable.Range(0, PerWriter).Select(i => MessageChecksum.MakeId((ulong)stream, (ulong)i)), ids);
        }
    }

    [Fact]
    public async Task Operations_TokenAlreadyCancelled_CompleteCancelledWithoutTouchingTheChannel()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 4);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();
        var cancelled = new CancellationToken(canceled: true);

        Assert.True(writer.TryWrite(PatternMessage(5, 0, 4)));
        ValueTask<Message> read = reader.ReadAsync(cancelled);
        Assert.True(read.IsCanceled);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read.AsTask());
        Assert.True(reader.WaitToReadAsync(cancelled).IsCanceled);
        ValueTask write = writer.WriteAsync(PatternMessage(5, 1, 4), cancelled);
        Assert.True(write.IsCanceled);
        Assert.True(writer.WaitToWriteAsync(cancelled).IsCanceled);

        // The queued message was not taken, the cancelled write was not enqueued.
        Assert.Equal(MessageChecksum.MakeId(5, 0), (await reader.ReadAsync().Within("the queued message")).Id);
        Assert.False(reader.TryRead(out _));
    }

    [Fact]
    public async Task ReadAsync_CancelledWhilePending_CompletesOnceAndTheNextReadGetsTheMessage()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 4);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();
        using var cts = new CancellationTokenSource();
        int completions = 0;

        Task<Message> read = reader.ReadAsync(cts.Token).AsTask();
        Task counted = read.ContinueWith(_ => Interlocked.Increment(ref completions), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        Assert.False(read.IsCompleted, "the channel is empty: the read must be pending");
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read.Within("the cancelled read"));
        await counted.Within("the completion count");

        await writer.WriteAsync(PatternMessage(6, 0, 5)).Within("the write");
        Assert.Equal(MessageChecksum.MakeId(6, 0), (await reader.ReadAsync().Within("the next read")).Id);
        Assert.Equal(1, Volatile.Read(ref completions));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public async Task ReadAsync_CancelStormAgainstProducerAgent_LosesAndDuplicatesNothing(int readers)
    {
        const ulong Count = 3000;
        long strays = ImportDiagnostics.StrayCallbacks, contained = ImportDiagnostics.ContainedExceptions;
        long kept = ImportDiagnostics.KeptAfterCancel;
        var (tx, rx) = Owner.CreateChannel(capacity: 4);
        ChannelReader<Message> reader = rx.ToReader();
        Task<AgentReport> producer = Agents.RunProducerAsync(tx, stream: 7, count: Count, payloadLength: 24);

        ReadLoop[] loops = await Task.WhenAll(Enumerable.Range(0, readers)
            .Select(seed => Task.Run(() => ReadLoop.RunAsync(reader, seed)))).Within("the reading loops");
        AgentReport report = await producer.Within("the producer agent");

        List<Message> all = loops.SelectMany(l => l.Messages).ToList();
        ulong checksum = 0;
        foreach (Message m in all) checksum += m.Checksum();
        AssertReport(report, Count, checksum, $"{Agents.Name} producer vs what .NET read");
        Assert.Equal(all.Count, all.Select(m => m.Id).Distinct().Count());
        if (readers == 1)
            Assert.Equal(Enumerable.Range(0, (int)Count).Select(i => MessageChecksum.MakeId(7, (ulong)i)), all.Select(m => m.Id));
        foreach (ReadLoop loop in loops) Assert.Equal(loop.Issued, loop.Completed);
        await reader.Completion.Within("the reader's Completion");
        Assert.Equal(strays, ImportDiagnostics.StrayCallbacks);
        Assert.Equal(contained, ImportDiagnostics.ContainedExceptions);
        _output.WriteLine($"{readers} reader(s): {loops.Sum(l => l.Issued)} reads, {loops.Sum(l => l.Cancelled)} cancelled, " +
            $"{ImportDiagnostics.KeptAfterCancel - kept} message(s) kept after a cancel (process-wide)");
    }

    [Fact]
    public async Task WriteAsync_CancelStormAgainstConsumerAgent_EnqueuesExactlyTheCompletedWrites()
    {
        const int Attempts = 3000;
        long strays = ImportDiagnostics.StrayCallbacks, contained = ImportDiagnostics.ContainedExceptions;
        var (tx, rx) = Owner.CreateChannel(capacity: 2);
        Task<AgentReport> consumer = Agents.RunConsumerAsync(rx);
        ChannelWriter<Message> writer = tx.ToWriter();
        var random = new Random(11);
        ulong seq = 0, checksum = 0;
        int cancelled = 0;

        for (int i = 0; i < Attempts; i++)
        {
            // A cancelled write must not have been enqueued: the retry reuses its seq, and the
            // consumer would count an order error for a duplicate.
            Message m = PatternMessage(9, seq, random.Next(0, 40));
            using var cts = new CancellationTokenSource();
            int mode = random.Next(5);
            Task cancelling = Task.CompletedTask;
            if (mode == 1) cts.Cancel();
            try
            {
                ValueTask write = writer.WriteAsync(m, cts.Token);
                switch (mode)
                {
                    case 2:
                        cts.Cancel();
                        break;
                    case 3:
                        cancelling = Task.Run(cts.Cancel);
                        break;
                    case 4:
                        Thread.SpinWait(random.Next(2000)); // a random point, not a synchronisation
                        cts.Cancel();
                        break;
                }
                await write.Within("WriteAsync");
                seq++;
                checksum += m.Checksum();
            }
            catch (OperationCanceledException)
            {
                cancelled++;
            }
            await cancelling.Within("the cancelling task");
        }
        writer.Complete();

        AgentReport report = await consumer.Within("the consumer agent");
        AssertReport(report, seq, checksum, $"{Agents.Name} consumer vs what .NET wrote");
        Assert.Equal(strays, ImportDiagnostics.StrayCallbacks);
        Assert.Equal(contained, ImportDiagnostics.ContainedExceptions);
        _output.WriteLine($"{Attempts} writes: {seq} enqueued, {cancelled} cancelled");
    }

    [Fact]
    public async Task WriteAsync_CancelledWhileChannelFull_ThrowsAndDoesNotEnqueue()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 1);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();
        await writer.WriteAsync(PatternMessage(10, 0, 4)).Within("the first write");
        using var cts = new CancellationTokenSource();

        Task write = writer.WriteAsync(PatternMessage(10, 1, 4), cts.Token).AsTask();
        Assert.False(write.IsCompleted, "the channel is full: the write must wait for room");
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => write.Within("the cancelled write"));

        writer.Complete();
        List<Message> messages = await ReadAllAsync(reader).Within("ReadAllAsync");
        Assert.Equal([MessageChecksum.MakeId(10, 0)], messages.Select(m => m.Id));
    }

    [Fact]
    public async Task WriteAsync_WriterCompletedWhilePending_ThrowsChannelClosed()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 1);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();
        await writer.WriteAsync(PatternMessage(11, 0, 4)).Within("the first write");

        Task write = writer.WriteAsync(PatternMessage(11, 1, 4)).AsTask();
        Assert.False(write.IsCompleted, "the channel is full: the write must wait for room");
        writer.Complete();
        await Assert.ThrowsAsync<ChannelClosedException>(() => write.Within("the pending write"));

        List<Message> messages = await ReadAllAsync(reader).Within("ReadAllAsync");
        Assert.Equal([MessageChecksum.MakeId(11, 0)], messages.Select(m => m.Id));
    }

    [Fact]
    public async Task WriteAsync_WriterDisposedWhilePending_ThrowsObjectDisposedAndDoesNotEnqueue()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 1);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();
        await writer.WriteAsync(PatternMessage(12, 0, 4)).Within("the first write");

        Task write = writer.WriteAsync(PatternMessage(12, 1, 4)).AsTask();
        Assert.False(write.IsCompleted, "the channel is full: the write must wait for room");
        ((IDisposable)writer).Dispose(); // releases the last sender: the channel closes
        await Assert.ThrowsAsync<ObjectDisposedException>(() => write.Within("the pending write"));

        List<Message> messages = await ReadAllAsync(reader).Within("ReadAllAsync");
        Assert.Equal([MessageChecksum.MakeId(12, 0)], messages.Select(m => m.Id));
    }

    [Fact]
    public async Task ReadAsync_ReaderDisposedWhilePending_ThrowsObjectDisposedAndWritersSeeClosed()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 4);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();

        Task<Message> read = reader.ReadAsync().AsTask();
        Assert.False(read.IsCompleted, "the channel is empty: the read must be pending");
        ((IDisposable)reader).Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => read.Within("the pending read"));
        await reader.Completion.Within("the reader's Completion");

        Assert.False(writer.TryWrite(PatternMessage(13, 0, 1)), "the receiver was released");
        await Assert.ThrowsAsync<ChannelClosedException>(() => writer.WriteAsync(PatternMessage(13, 0, 1)).Within("a write"));
        Assert.False(await writer.WaitToWriteAsync().Within("WaitToWriteAsync"));
    }

    [Fact]
    public async Task ReadAsync_OwnerShutsDownWhilePending_ThrowsShutdown()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 4);
        ChannelReader<Message> reader = rx.ToReader();

        Task<Message> read = reader.ReadAsync().AsTask();
        Assert.False(read.IsCompleted, "the channel is empty: the read must be pending");
        await Owner.ShutdownAsync().Within("the owner's shutdown");

        InteropException pending = await Assert.ThrowsAsync<InteropException>(() => read.Within("the pending read"));
        Assert.Equal(Status.Shutdown, pending.Status);
        InteropException completion = await Assert.ThrowsAsync<InteropException>(() => reader.Completion.Within("Completion"));
        Assert.Equal(Status.Shutdown, completion.Status);
        InteropException later = await Assert.ThrowsAsync<InteropException>(() => reader.ReadAsync().Within("a later read"));
        Assert.Equal(Status.Shutdown, later.Status);
        Assert.False(reader.TryRead(out _));
        tx.Dispose(); // release stays valid after shutdown
        ((IDisposable)reader).Dispose();
    }

    [Fact]
    public async Task WriteAsync_OwnerShutsDownWhileChannelFull_ThrowsShutdown()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 1);
        ChannelWriter<Message> writer = tx.ToWriter();
        await writer.WriteAsync(PatternMessage(14, 0, 4)).Within("the first write");

        Task write = writer.WriteAsync(PatternMessage(14, 1, 4)).AsTask();
        Assert.False(write.IsCompleted, "the channel is full: the write must wait for room");
        await Owner.ShutdownAsync().Within("the owner's shutdown");

        InteropException pending = await Assert.ThrowsAsync<InteropException>(() => write.Within("the pending write"));
        Assert.Equal(Status.Shutdown, pending.Status);
        Assert.False(writer.TryWrite(PatternMessage(14, 2, 4)));
        InteropException wait = await Assert.ThrowsAsync<InteropException>(() => writer.WaitToWriteAsync().Within("WaitToWriteAsync"));
        Assert.Equal(Status.Shutdown, wait.Status);
        writer.Complete(); // close answers SHUTDOWN, release stays valid
        rx.Dispose();
    }

    [Fact]
    public async Task Operations_ReleasedPorts_ThrowArgumentException()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 4);
        var staleSender = new SenderPort(tx.Native);     // the same handles, after they were released
        var staleReceiver = new ReceiverPort(rx.Native);
        tx.Dispose();
        rx.Dispose();
        ChannelWriter<Message> writer = staleSender.ToWriter();
        ChannelReader<Message> reader = staleReceiver.ToReader();

        Assert.Throws<ArgumentException>(() => writer.TryWrite(new Message(1)));
        await Assert.ThrowsAsync<ArgumentException>(() => writer.WriteAsync(new Message(1)).AsTask());
        Assert.Throws<ArgumentException>(() => reader.TryRead(out _));
        await Assert.ThrowsAsync<ArgumentException>(() => reader.ReadAsync().AsTask());
        await Assert.ThrowsAsync<ArgumentException>(() => reader.WaitToReadAsync().AsTask());

        Assert.True(writer.TryComplete());   // close and release answer INVALID: nothing to give back
        ((IDisposable)reader).Dispose();
    }

    [Fact]
    public async Task Write_PayloadOverChannelLimit_ThrowsArgumentException()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 4, maxPayload: 16);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();

        Assert.Throws<ArgumentException>(() => writer.TryWrite(new Message(1, new byte[17])));
        await Assert.ThrowsAsync<ArgumentException>(() => writer.WriteAsync(new Message(2, new byte[17])).AsTask());
        Assert.True(writer.TryWrite(new Message(3, new byte[16])));
        await writer.WriteAsync(new Message(4, new byte[16])).Within("a write at the limit");
        writer.Complete();

        List<Message> messages = await ReadAllAsync(reader).Within("ReadAllAsync");
        Assert.Equal([3UL, 4UL], messages.Select(m => m.Id));
    }

    [Fact]
    public async Task Dispose_CalledTwice_IsHarmlessAndLaterCallsThrowObjectDisposed()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 4);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();

        ((IDisposable)writer).Dispose();
        ((IDisposable)writer).Dispose();
        ((IDisposable)reader).Dispose();
        ((IDisposable)reader).Dispose();

        Assert.Throws<ObjectDisposedException>(() => writer.TryWrite(new Message(1)));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => writer.WriteAsync(new Message(1)).AsTask());
        await Assert.ThrowsAsync<ObjectDisposedException>(() => writer.WaitToWriteAsync().AsTask());
        Assert.False(writer.TryComplete());
        Assert.Throws<ObjectDisposedException>(() => reader.TryRead(out _));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => reader.ReadAsync().AsTask());
        await Assert.ThrowsAsync<ObjectDisposedException>(() => reader.WaitToReadAsync().AsTask());
        await reader.Completion.Within("the reader's Completion");

        Assert.False(tx.IsOwned);
        Assert.Throws<ObjectDisposedException>(() => tx.ToWriter()); // handed over already
        Assert.Throws<ObjectDisposedException>(() => rx.ToReader());
        tx.Dispose(); // the SenderPort no longer owns the port: nothing happens
    }

    [Fact]
    public async Task Write_AfterComplete_FailsLikeACompletedChannelWriter()
    {
        var (tx, rx) = Owner.CreateChannel(capacity: 4);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();

        writer.Complete();
        Assert.False(writer.TryComplete());
        Assert.Throws<ChannelClosedException>(() => writer.Complete());
        Assert.False(writer.TryWrite(new Message(1)));
        await Assert.ThrowsAsync<ChannelClosedException>(() => writer.WriteAsync(new Message(1)).AsTask());
        Assert.False(await writer.WaitToWriteAsync().Within("WaitToWriteAsync"));

        await Assert.ThrowsAsync<ChannelClosedException>(() => reader.ReadAsync().Within("a read"));
        await reader.Completion.Within("the reader's Completion");
    }

    private static async Task<List<Message>> ReadAllAsync(ChannelReader<Message> reader)
    {
        var messages = new List<Message>();
        await foreach (Message m in reader.ReadAllAsync()) messages.Add(m);
        return messages;
    }

    /// <summary>One reading loop of the cancel storm: reads until CLOSED, cancelling reads at
    /// random points (before the call, right after it, from another thread, after a random spin),
    /// half of the WaitToReadAsync kind.</summary>
    private sealed class ReadLoop
    {
        public List<Message> Messages { get; } = new();
        public int Issued { get; private set; }
        public int Completed { get; private set; }
        public int Cancelled { get; private set; }

        public static async Task<ReadLoop> RunAsync(ChannelReader<Message> reader, int seed)
        {
            var loop = new ReadLoop();
            var random = new Random(seed);
            while (true)
            {
                using var cts = new CancellationTokenSource();
                int mode = random.Next(6);
                Task cancelling = Task.CompletedTask;
                loop.Issued++;
                try
                {
                    if (mode == 1) cts.Cancel();
                    if (mode == 5)
                    {
                        ValueTask<bool> wait = reader.WaitToReadAsync(cts.Token);
                        if (random.Next(2) == 0) cancelling = Task.Run(cts.Cancel);
                        bool more = await wait.Within("WaitToReadAsync");
                        loop.Completed++;
                        if (!more) return loop;
                        if (reader.TryRead(out Message m)) loop.Messages.Add(m);
                    }
                    else
                    {
                        ValueTask<Message> read = reader.ReadAsync(cts.Token);
                        switch (mode)
                        {
                            case 2:
                                cts.Cancel();
                                break;
                            case 3:
                                cancelling = Task.Run(cts.Cancel);
                                break;
                            case 4:
                                Thread.SpinWait(random.Next(2000)); // a random point, not a synchronisation
                                cts.Cancel();
                                break;
                        }
                        Message m = await read.Within("ReadAsync");
                        loop.Completed++;
                        loop.Messages.Add(m);
                    }
                }
                catch (OperationCanceledException)
                {
                    loop.Completed++;
                    loop.Cancelled++;
                }
                catch (ChannelClosedException)
                {
                    loop.Completed++;
                    return loop;
                }
                finally
                {
                    await cancelling.Within("the cancelling task");
                }
            }
        }
    }
}
