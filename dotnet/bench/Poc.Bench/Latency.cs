using System.Diagnostics;
using System.Threading.Channels;
using Poc.Bridge;

namespace Poc.Bench;

/// <summary>A ping-pong round-trip figure: a pinger of runtime A, an echo agent of runtime B.</summary>
/// <param name="P50">Median over the runs of each run's p50, ns.</param>
/// <param name="P50Spread">Min and max of the runs' p50s (null for rows read from a native file).</param>
/// <param name="Source">Who measured it: "Poc.Bench" or the native file's name.</param>
internal sealed record LatencyRow(string A, string B, double P50, double P99, Stats? P50Spread, int Samples, int Runs,
    int Payload, string Source)
{
    public string? What { get; init; }
    public double? NativeP50 { get; set; }
    public string? NativeNote { get; set; }
    public double? Ratio => NativeP50 is { } n && n > 0 ? P50 / n : null;
}

/// <summary>A runtime's plain native ping-pong (no Poc code).</summary>
internal sealed record NativeLatency(string Runtime, double P50, double P99, int Samples, int Payload, string What);

/// <summary>
/// Ping-pong latency with a .NET pinger: the pinger writes a message to channel X (owned by the echo
/// runtime B) through <see cref="SenderPort.ToWriter"/> and awaits the echo from channel Y (owned by
/// .NET) through <see cref="ReceiverPort.ToReader"/>; B's echo agent receives from X and sends to Y.
/// </summary>
internal static class Latency
{
    private const ulong Stream = 7;

    public static int Figures => 4;

    public static async Task<(List<LatencyRow> Rows, NativeLatency Native)> RunAsync(IBridgeRuntime[] rts,
        DotNetRuntime dotnet, BenchConfig cfg, Progress progress)
    {
        int payload = BenchConfig.LatencyPayload, samples = cfg.LatencySamples, runs = cfg.LatencyRuns;
        var nativeRuns = new List<(double P50, double P99)>();
        await WarmUp(() => NativeDotNetOnce(BenchConfig.LatencyWarmup, payload));
        for (int r = 0; r < runs; r++) nativeRuns.Add(await NativeDotNetOnce(samples, payload));
        var nativeRow = Summarise(".NET", ".NET", nativeRuns, samples, payload, "Poc.Bench");
        var native = new NativeLatency(".NET", nativeRow.P50, nativeRow.P99, samples, payload,
            $"two Tasks ping-ponging over two bounded System.Threading.Channels channels (capacity {BenchConfig.LatencyCapacity})");
        progress.Step($".NET native ping-pong: p50 {native.P50:F0} ns, p99 {native.P99:F0} ns");

        var rows = new List<LatencyRow>();
        foreach (var b in rts)
        {
            var list = new List<(double P50, double P99)>();
            await WarmUp(() => PocOnce(b, dotnet, BenchConfig.LatencyWarmup, payload));
            for (int r = 0; r < runs; r++) list.Add(await PocOnce(b, dotnet, samples, payload));
            var row = Summarise(".NET", b.Name, list, samples, payload, "Poc.Bench");
            rows.Add(row);
            progress.Step($".NET pinger -> {b.Name} echo: p50 {row.P50:F0} ns, p99 {row.P99:F0} ns (runs' p50 {row.P50Spread!.Min:F0}–{row.P50Spread.Max:F0})");
        }
        return (rows, native);
    }

    /// <summary>Discarded short runs for at least <see cref="BenchConfig.MinWarmup"/> (tiered JIT),
    /// before the timed runs (each of which has its own warm-up round trips too).</summary>
    private static async Task WarmUp(Func<Task<(double, double)>> once)
    {
        var sw = Stopwatch.StartNew();
        do await once(); while (sw.Elapsed < BenchConfig.MinWarmup);
    }

    private static LatencyRow Summarise(string a, string b, List<(double P50, double P99)> runs, int samples, int payload,
        string source)
    {
        var p50 = Stats.Of(runs.Select(x => x.P50).ToList());
        var p99 = Stats.Of(runs.Select(x => x.P99).ToList());
        return new LatencyRow(a, b, p50.Median, p99.Median, p50, samples, runs.Count, payload, source)
        {
            What = $"{a} pinger writes to Poc channel X owned by {b} (SenderPort.ToWriter) and awaits the echo from Poc channel Y owned by .NET (ReceiverPort.ToReader); {b} echo agent (RunEchoAsync) from X to Y; capacity {BenchConfig.LatencyCapacity}",
        };
    }

    /// <summary>One run: fresh channels, warm-up round trips, then <paramref name="samples"/> timed ones.</summary>
    private static async Task<(double P50, double P99)> PocOnce(IBridgeRuntime b, DotNetRuntime dotnet, int samples, int payload)
    {
        var (xSender, xReceiver) = b.CreateChannel(BenchConfig.LatencyCapacity);
        var (ySender, yReceiver) = dotnet.CreateChannel(BenchConfig.LatencyCapacity);
        Task<AgentReport> echo;
        try
        {
            echo = b.RunEchoAsync(xReceiver, ySender);
        }
        catch
        {
            xSender.Dispose(); xReceiver.Dispose(); ySender.Dispose(); yReceiver.Dispose();
            throw;
        }
        ChannelWriter<Message> writer = xSender.ToWriter();
        ChannelReader<Message> reader = yReceiver.ToReader();
        int total = BenchConfig.LatencyWarmup + samples;
        long[] ticks;
        try
        {
            ticks = await Task.Run(() => PingAsync(writer, reader, samples, payload, $".NET -> {b.Name}"));
        }
        finally
        {
            // Releasing the last sender of X closes it: the echo agent drains and ends.
            ((IDisposable)writer).Dispose();
        }
        AgentReport report = await echo;
        ((IDisposable)reader).Dispose();
        if (report.Status != Status.Ok || report.Messages != (ulong)total)
            throw new InvalidOperationException($".NET -> {b.Name} echo agent: {report}, expected {total} messages");
        return Percentiles(ticks);
    }

    /// <summary>The pinger loop shared by the Poc and the native figure: one message in flight,
    /// each echo checked (same id, same bytes).</summary>
    private static async Task<long[]> PingAsync(ChannelWriter<Message> writer, ChannelReader<Message> reader,
        int samples, int payload, string what)
    {
        int total = BenchConfig.LatencyWarmup + samples;
        var ticks = new long[samples];
        byte[] buf = new byte[payload];
        for (int i = 0; i < total; i++)
        {
            ulong id = MessageChecksum.MakeId(Stream, (ulong)i);
            MessageChecksum.FillPattern(id, buf);
            long t0 = Stopwatch.GetTimestamp();
            await writer.WriteAsync(new Message(id, buf));
            Message echo = await reader.ReadAsync();
            long t1 = Stopwatch.GetTimestamp();
            if (echo.Id != id || echo.Payload.Length != payload || !MessageChecksum.CheckPattern(id, echo.Payload.Span))
                throw new InvalidOperationException(
                    $"{what}: round trip {i} sent id {id:x} ({payload} bytes), got id {echo.Id:x} ({echo.Payload.Length} bytes, pattern {(MessageChecksum.CheckPattern(echo.Id, echo.Payload.Span) ? "ok" : "wrong")})");
            if (i >= BenchConfig.LatencyWarmup) ticks[i - BenchConfig.LatencyWarmup] = t1 - t0;
        }
        return ticks;
    }

    /// <summary>The native .NET baseline: the same pinger loop, an echo Task, two bounded
    /// System.Threading.Channels channels of the same capacity.</summary>
    private static async Task<(double P50, double P99)> NativeDotNetOnce(int samples, int payload)
    {
        var options = new BoundedChannelOptions(BenchConfig.LatencyCapacity)
        { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait };
        var x = Channel.CreateBounded<Message>(options);
        var y = Channel.CreateBounded<Message>(options);
        var echo = Task.Run(async () =>
        {
            ulong n = 0;
            await foreach (var m in x.Reader.ReadAllAsync())
            {
                await y.Writer.WriteAsync(m);
                n++;
            }
            y.Writer.Complete();
            return n;
        });
        long[] ticks;
        try
        {
            ticks = await Task.Run(() => PingAsync(x.Writer, y.Reader, samples, payload, "native .NET"));
        }
        finally
        {
            x.Writer.TryComplete();
        }
        ulong echoed = await echo;
        if (echoed != (ulong)(BenchConfig.LatencyWarmup + samples))
            throw new InvalidOperationException($"native .NET echo: {echoed} messages");
        return Percentiles(ticks);
    }

    private static (double P50, double P99) Percentiles(long[] ticks)
    {
        Array.Sort(ticks);
        return (Measure.TicksToNs((long)Measure.Percentile(ticks, 0.50)), Measure.TicksToNs((long)Measure.Percentile(ticks, 0.99)));
    }
}
