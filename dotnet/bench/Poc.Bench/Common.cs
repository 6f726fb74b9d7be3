using System.Diagnostics;

namespace Poc.Bench;

/// <summary>Median and spread (min, max) of the timed runs of one figure.</summary>
internal sealed record Stats(double Median, double Min, double Max)
{
    public static Stats Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("no values", nameof(values));
        var xs = values.Order().ToList();
        return new Stats(MedianOfSorted(xs), xs[0], xs[^1]);
    }

    public static double MedianOfSorted(IReadOnlyList<double> xs) =>
        xs.Count % 2 == 1 ? xs[xs.Count / 2] : (xs[xs.Count / 2 - 1] + xs[xs.Count / 2]) / 2;
}

/// <summary>Settings of one run of Poc.Bench (quick or full).</summary>
internal sealed record BenchConfig(bool Quick)
{
    public const int ThroughputCapacity = 1024;
    public const int LatencyCapacity = 1024;
    public const int LatencyPayload = 64;
    public const int LatencyWarmup = 1_000;

    // Throughput
    public ulong ThroughputMessages => Quick ? 20_000UL : 200_000UL;
    public int ThroughputRuns => Quick ? 3 : 7;

    // Latency: each run is a fresh pair of channels, LatencyWarmup round trips, then the samples.
    public int LatencySamples => Quick ? 5_000 : 50_000;
    public int LatencyRuns => Quick ? 5 : 7;

    // Calls: one warm-up run, then CallRuns timed runs of the count below.
    public int ReadyCalls => Quick ? 20_000 : 200_000;
    public int PostedCalls => Quick ? 5_000 : 50_000;
    public int CallRuns => Quick ? 5 : 7;

    // Strategies: calls per run (a multiple of 64: the 64-in-flight runs split them evenly).
    public int StrategyCalls => Quick ? 6_400 : 25_600;
    public int StrategyRuns => Quick ? 3 : 7;

    /// <summary>Calls and latency warm up for at least this long (tiered JIT: call counting starts
    /// after 100 ms, then hot methods are recompiled in the background).</summary>
    public static readonly TimeSpan MinWarmup = TimeSpan.FromMilliseconds(300);

    public string Mode => Quick ? "quick" : "full";
}

/// <summary>Progress lines: "[bench N/total Ts] what".</summary>
internal sealed class Progress(int total)
{
    private readonly Stopwatch _sw = Stopwatch.StartNew();
    private int _done;

    public int Total { get; set; } = total;

    public TimeSpan Elapsed => _sw.Elapsed;

    public void Step(string what)
    {
        _done++;
        Console.WriteLine($"[bench {_done}/{Total} {_sw.Elapsed.TotalSeconds:F0}s] {what}");
    }

    public static void Note(string what) => Console.WriteLine($"[bench] {what}");
}

internal static class Measure
{
    /// <summary>Warm-up runs (discarded: one, or as many as fit in <paramref name="minWarmup"/> so
    /// that the JIT's tiering has promoted the hot code), then <paramref name="runs"/> timed runs;
    /// median, min, max.</summary>
    public static async Task<Stats> RunsAsync(Func<Task<double>> once, int runs, TimeSpan minWarmup = default)
    {
        var warm = Stopwatch.StartNew();
        do await once(); while (warm.Elapsed < minWarmup);
        var xs = new List<double>();
        for (int i = 0; i < runs; i++) xs.Add(await once());
        return Stats.Of(xs);
    }

    /// <summary>Stopwatch ticks to nanoseconds.</summary>
    public static double TicksToNs(long ticks) => ticks * 1e9 / Stopwatch.Frequency;

    /// <summary>Nearest-rank percentile of sorted values (q in (0, 1]).</summary>
    public static double Percentile(long[] sorted, double q)
    {
        int rank = (int)Math.Ceiling(q * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    public static string Short(string runtime) => runtime switch
    {
        "C++" => "cpp",
        "Rust" => "rust",
        ".NET" or "C#" => "net",
        _ => runtime,
    };
}
