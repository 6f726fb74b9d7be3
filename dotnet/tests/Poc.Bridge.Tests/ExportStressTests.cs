using Xunit;
using static Poc.Bridge.Tests.ExportTestHarness;

namespace Poc.Bridge.Tests;

/// <summary>Volume through the .NET exporter's raw vtables: backpressure at capacity 1, fan-in from
/// cloned senders. Counts and checksums, never timings.</summary>
public sealed class ExportStressTests
{
    [Fact]
    public async Task Backpressure_Capacity1TenThousandMessages_NothingLostOrReordered()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        const int count = 10_000;
        ulong sent = 0;
        Task producer = Task.Run(async () =>
        {
            for (ulong seq = 0; seq < count; seq++)
            {
                ulong id = MessageChecksum.MakeId(1, seq);
                byte[] payload = Pattern(id, (int)(seq % 64));
                int status = await SendAndWaitAsync(tx, id, payload);
                Assert.Equal((int)Status.Ok, status);
                sent = unchecked(sent + MessageChecksum.Of(id, payload));
            }
            Assert.Equal((int)Status.Ok, tx.Release()); // the last sender: closes the channel
        });

        ulong received = 0, n = 0;
        while (true)
        {
            var (status, m) = await RecvAndWaitAsync(rx);
            if (status == (int)Status.Closed) break;
            Assert.Equal((int)Status.Ok, status);
            Assert.Equal(MessageChecksum.MakeId(1, n), m!.Value.Id);
            Assert.True(MessageChecksum.CheckPattern(m.Value.Id, m.Value.Payload.Span));
            received = unchecked(received + m.Value.Checksum());
            n++;
        }
        await producer.Within("producer");
        Assert.Equal((ulong)count, n);
        Assert.Equal(sent, received);
        Assert.Equal((int)Status.Ok, rx.Release());
        OpRecorder.AssertNoFailures();
    }

    [Fact]
    public async Task FanIn_FourClonedSenders_EveryStreamArrivesInOrder()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 2);
        const int streams = 4, perStream = 2500;
        var senders = new RawSender[streams];
        senders[0] = tx;
        for (int s = 1; s < streams; s++) Assert.Equal((int)Status.Ok, tx.Clone(out senders[s]));
        Task[] producers = Enumerable.Range(0, streams).Select(s => Task.Run(async () =>
        {
            for (ulong seq = 0; seq < perStream; seq++)
                Assert.Equal((int)Status.Ok, await SendAndWaitAsync(senders[s], MessageChecksum.MakeId((ulong)s, seq)));
            Assert.Equal((int)Status.Ok, senders[s].Release());
        })).ToArray();

        var next = new ulong[streams];
        int total = 0;
        while (true)
        {
            var (status, m) = await RecvAndWaitAsync(rx);
            if (status == (int)Status.Closed) break;
            Assert.Equal((int)Status.Ok, status);
            ulong stream = m!.Value.Id >> MessageChecksum.StreamShift;
            Assert.Equal(next[stream]++, m.Value.Id & MessageChecksum.SeqMask);
            total++;
        }
        await Task.WhenAll(producers).Within("producers");
        Assert.Equal(streams * perStream, total);
        Assert.Equal((int)Status.Ok, rx.Release());
        OpRecorder.AssertNoFailures();
    }
}
