// ring — one token circles through all three runtimes, K laps, and every lap is timed.
//
// Protocol. Three channels, each owned by the runtime that reads from it:
//
//     C# ──▶ [channel owned by C++] ──▶ C++ echo agent ──▶ [channel owned by Rust] ──▶ Rust echo agent
//      ▲                                                                                   │
//      └──────────────────────────── [channel owned by .NET] ◀─────────────────────────────┘
//
//   1. The host starts the C++ echo agent (C++ channel → Rust channel) and the Rust echo agent
//      (Rust channel → .NET channel), and imports the two ends it keeps: a ChannelWriter over the
//      C++ channel's sender (ToWriter) and a ChannelReader over the .NET channel's receiver (ToReader).
//   2. Lap i (i = 0 .. K-1, K = --messages, default 2000): C# builds token i — id MakeId(1, i), a
//      --payload-byte payload (default 64) filled with the producer pattern — writes it, and awaits
//      the next message from the .NET channel. One token is in the ring at a time, so the time from
//      the write to the read is one lap: C++ hop + Rust hop + .NET hop. The returned token must be
//      token i (in order) with its payload intact (same checksum, pattern holds).
//   3. After K laps, C# completes its writer: the C++ channel closes, the C++ echo agent ends and
//      releases its sender (the Rust channel's last one), so the Rust channel closes, the Rust echo
//      ends, and the .NET channel closes. The reader then reports "no more" — no stray token.
// Latency: the lap is the only thing one clock can time end to end (the echo agents carry no
// timestamps), so the per-hop figure is lap / 3 — an average over the three different hops, not a
// measurement of each one. The first lap (threads seen for the first time) is printed on its own and
// kept out of the percentiles; the others go into a 100 ns histogram, so memory stays flat for any K.
// Invariants: every token returns, in order, undamaged; no extra token after the close; both echo
// agents end OK having echoed K messages whose checksum sum equals the sum over the tokens sent.
// Every wait is bounded: a lap with no answer for 30 s fails the run instead of hanging it.
using System.Diagnostics;
using System.Threading.Channels;
using Poc.Bridge;

namespace Poc.Scenarios;

internal sealed class RingScenario : Scenario
{
    private static readonly TimeSpan Stall = TimeSpan.FromSeconds(30);
    private const ulong TokenStream = 1;

    public override string Name => "ring";
    public override string Runtimes => "C# C++ Rust";
    public override string Description =>
        "a token circles C# -> C++ -> Rust -> C# for K laps (--messages, default 2000), each channel owned by its reader; lap and per-hop latency";

    public override async Task RunAsync(ScenarioContext context)
    {
        long laps = context.Options.Messages ?? 2000;
        int payloadLength = context.Options.Payload ?? 64;
        int capacity = context.Options.Capacity ?? 1;
        context.Work = $"{laps} laps";

        await using var cpp = new CppRuntime(threads: 1);
        await using var rust = new RustRuntime(threads: 1);
        await using var dotnet = new DotNetRuntime();

        // 1. The three channels, each owned by the runtime that reads it, and the two echo agents.
        //    `using` on the ports only matters if something throws before they are handed over.
        (SenderPort intoCpp, ReceiverPort cppIn) = cpp.CreateChannel(capacity);
        (SenderPort intoRust, ReceiverPort rustIn) = rust.CreateChannel(capacity);
        (SenderPort intoDotNet, ReceiverPort dotnetIn) = dotnet.CreateChannel(capacity);
        using (intoCpp) using (cppIn) using (intoRust) using (rustIn) using (intoDotNet) using (dotnetIn)
        {
            Task<AgentReport> cppEcho = cpp.RunEchoAsync(cppIn, intoRust);
            Task<AgentReport> rustEcho = rust.RunEchoAsync(rustIn, intoDotNet);
            ChannelWriter<Message> toCpp = intoCpp.ToWriter();
            ChannelReader<Message> fromRust = dotnetIn.ToReader();

            context.Line("    C# -> [C++ channel] -> C++ echo -> [Rust channel] -> Rust echo -> [.NET channel] -> C#");
            context.Line($"    {laps} lap{(laps == 1 ? "" : "s")}, one token in the ring, {payloadLength}-byte payload, channel capacity {capacity}");

            var histogram = new LatencyHistogram();
            long back = 0, outOfOrder = 0, damaged = 0;
            ulong sentChecksum = 0;
            double firstLapUs = 0;
            long progressEvery = laps >= 20_000 ? laps / 10 : 0;
            var clock = Stopwatch.StartNew();
            using var watchdog = new CancellationTokenSource();
            try
            {
                // 2. The laps.
                for (long lap = 0; lap < laps; lap++)
                {
                    ulong id = MessageChecksum.MakeId(TokenStream, (ulong)lap);
                    byte[] payload = payloadLength == 0 ? [] : new byte[payloadLength];
                    MessageChecksum.FillPattern(id, payload);
                    var token = new Message(id, payload);
                    ulong sum = token.Checksum();
                    sentChecksum = unchecked(sentChecksum + sum);

                    watchdog.CancelAfter(Stall); // re-armed every lap: "no progress for 30 s" fails the run
                    long start = Stopwatch.GetTimestamp();
                    await toCpp.WriteAsync(token, watchdog.Token);
                    Message returned = await fromRust.ReadAsync(watchdog.Token);
                    TimeSpan lapTime = Stopwatch.GetElapsedTime(start);

                    back++;
                    if (lap == 0) firstLapUs = lapTime.TotalMicroseconds; // warm-up: kept out of the percentiles
                    else histogram.Add(lapTime);
                    if (returned.Id != id) outOfOrder++;
                    else if (returned.Checksum() != sum || !MessageChecksum.CheckPattern(returned.Id, returned.Payload.Span)) damaged++;

                    if (progressEvery > 0 && (lap + 1) % progressEvery == 0)
                        context.Line($"    ... {lap + 1,10} laps ({100 * (lap + 1) / laps,3}%)  {clock.Elapsed.TotalSeconds,6:F1} s  lap p50 so far {histogram.Percentile(50),7:F1} µs");
                }
            }
            catch (OperationCanceledException) when (watchdog.IsCancellationRequested)
            {
                context.Fail($"lap {back}: the token did not come back within {Stall.TotalSeconds} s");
            }
            catch (Exception e) when (e is ChannelClosedException or InteropException or ArgumentException)
            {
                context.Fail($"lap {back}: the ring broke: {e.GetType().Name}: {e.Message}");
            }
            clock.Stop();

            // 3. Close the ring from the C# end; the close travels C++ -> Rust -> .NET.
            toCpp.TryComplete();
            bool stray = false;
            bool closed = false;
            using var closeBound = new CancellationTokenSource(Stall);
            try
            {
                stray = await fromRust.WaitToReadAsync(closeBound.Token);
                closed = !stray;
            }
            catch (OperationCanceledException)
            {
                context.Fail($"the .NET channel did not report closed within {Stall.TotalSeconds} s of closing the ring");
            }
            catch (InteropException e)
            {
                context.Fail($"the .NET channel ended with {e.Status} instead of closed");
            }
            ((IDisposable)fromRust).Dispose();

            AgentReport? cppReport = await WithinAsync(cppEcho, Stall);
            AgentReport? rustReport = await WithinAsync(rustEcho, Stall);

            // Report.
            if (back > 1)
            {
                double mean = histogram.MeanMicroseconds;
                context.Line($"    lap  p50 {histogram.Percentile(50),8:F1} µs   p90 {histogram.Percentile(90),8:F1} µs   p99 {histogram.Percentile(99),8:F1} µs   max {histogram.MaxMicroseconds,9:F1} µs   mean {mean,8:F1} µs");
                context.Line($"    hop  p50 {histogram.Percentile(50) / 3,8:F1} µs   mean {mean / 3,8:F1} µs   (lap / 3: the average of the C++, Rust and .NET hops)");
                context.Line($"    first lap {firstLapUs:F1} µs (the first use of each runtime's threads; not in the percentiles); {back} laps in {clock.Elapsed.TotalSeconds:F2} s");
            }
            context.Line($"    tokens  {laps} sent, {back} back, {outOfOrder} out of order, {damaged} damaged; after the close: {(closed ? "channel closed, no stray token" : stray ? "a STRAY token" : "no answer")}");
            ReportEcho(context, "C++", cppReport, laps, sentChecksum);
            ReportEcho(context, "Rust", rustReport, laps, sentChecksum);

            context.Check(back == laps, $"every token came back ({back} of {laps})");
            context.Check(outOfOrder == 0, $"tokens came back in order ({outOfOrder} out of order)");
            context.Check(damaged == 0, $"payloads intact: checksum and pattern ({damaged} damaged)");
            context.Check(closed, "closing the ring closed every channel in turn and left no stray token");
        }
    }

    private static void ReportEcho(ScenarioContext context, string runtime, AgentReport? report, long laps, ulong sentChecksum)
    {
        if (report is not { } r)
        {
            context.Line($"    echo {runtime,-5} did not end within {Stall.TotalSeconds} s");
            context.Fail($"the {runtime} echo agent ended within {Stall.TotalSeconds} s");
            return;
        }
        context.Line($"    echo {runtime,-5} {r.Status.ToString().ToUpperInvariant(),-9} {r.Messages,8} msgs   checksum {r.Checksum:x16} {(r.Checksum == sentChecksum ? "= sent" : $"!= sent {sentChecksum:x16}")}");
        context.Check(r.Status == Status.Ok, $"the {runtime} echo agent ended OK (got {r.Status})");
        context.Check(r.Messages == (ulong)laps, $"the {runtime} echo agent echoed {laps} tokens (got {r.Messages})");
        context.Check(r.Checksum == sentChecksum, $"the {runtime} echo agent's checksum equals the tokens' ({r.Checksum:x16} vs {sentChecksum:x16})");
    }

    private static async Task<AgentReport?> WithinAsync(Task<AgentReport> agent, TimeSpan bound)
    {
        try
        {
            return await agent.WaitAsync(bound);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>Lap latencies in 100 ns buckets up to 50 ms (one overflow bucket above): percentiles
    /// with bounded memory whatever the number of laps.</summary>
    private sealed class LatencyHistogram
    {
        private const double BucketUs = 0.1;
        private readonly long[] _buckets = new long[500_001];
        private long _count;
        private double _sumUs;

        public double MaxMicroseconds { get; private set; }

        public double MeanMicroseconds => _count == 0 ? 0 : _sumUs / _count;

        public void Add(TimeSpan t)
        {
            double us = t.TotalMicroseconds;
            _buckets[(int)Math.Min(us / BucketUs, _buckets.Length - 1)]++;
            _count++;
            _sumUs += us;
            MaxMicroseconds = Math.Max(MaxMicroseconds, us);
        }

        /// <summary>The upper edge of the bucket holding the p-th percentile (the max for the overflow bucket).</summary>
        public double Percentile(double p)
        {
            long rank = Math.Max(1, (long)Math.Ceiling(_count * p / 100));
            long seen = 0;
            for (int i = 0; i < _buckets.Length; i++)
            {
                seen += _buckets[i];
                if (seen >= rank) return i == _buckets.Length - 1 ? MaxMicroseconds : Math.Min((i + 1) * BucketUs, MaxMicroseconds);
            }
            return MaxMicroseconds;
        }
    }
}
