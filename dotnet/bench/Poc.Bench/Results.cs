namespace Poc.Bench;

/// <summary>Everything one run measured or read, with the native baselines merged in.</summary>
internal sealed class Results(BenchConfig cfg, NativeResults native)
{
    /// <summary>Every ping-pong pair the issue asks for: (pinger, echo).</summary>
    public static readonly (string A, string B)[] LatencyPairs =
    [
        (".NET", "C++"), (".NET", "Rust"), (".NET", ".NET"),
        ("Rust", "Rust"), ("Rust", "C++"), ("C++", "C++"), ("C++", "Rust"),
    ];

    public BenchConfig Config { get; } = cfg;
    public NativeResults Native { get; } = native;
    public HashSet<string> Sections { get; set; } = [];
    public List<ThroughputRow> Throughput { get; set; } = [];
    public List<LatencyRow> Latency { get; } = [];
    public List<NativeLatency> NativeLatency { get; } = [];
    public List<CallRow> Calls { get; } = [];
    public List<NativeCall> NativeCalls { get; } = [];
    public List<StrategyRow> Strategies { get; } = [];

    /// <summary>Pairs with no figure at all (the native program that measures them did not run).</summary>
    public List<string> LatencyNotMeasured { get; } = [];

    /// <summary>Merges the .NET pinger's rows with the native programs' rows; each row's native
    /// figure is the slower (larger) of the two runtimes' native p50s (a == b: that runtime's).</summary>
    public void MergeLatency(List<LatencyRow> dotnetRows, NativeLatency dotnetNative)
    {
        NativeLatency.Add(dotnetNative);
        foreach (string rt in new[] { "C++", "Rust" })
            if (Native.Latency(rt) is { } n) NativeLatency.Add(n);
        Latency.AddRange(dotnetRows);
        Latency.AddRange(Native.LatencyRows);
        foreach (var row in Latency)
        {
            var na = NativeLatency.FirstOrDefault(n => n.Runtime == row.A);
            var nb = NativeLatency.FirstOrDefault(n => n.Runtime == row.B);
            if (na is null || nb is null)
            {
                row.NativeNote = $"not measured: no native ping-pong for {string.Join(" and ", new[] { na is null ? row.A : null, nb is null ? row.B : null }.Where(x => x is not null).Distinct())}";
                continue;
            }
            var slower = na.P50 >= nb.P50 ? na : nb;
            row.NativeP50 = slower.P50;
            row.NativeNote = row.A == row.B ? $"{row.A} native" : $"slower of {row.A} native and {row.B} native: {slower.Runtime}";
        }
        foreach (var (a, b) in LatencyPairs)
            if (!Latency.Any(r => r.A == a && r.B == b))
                LatencyNotMeasured.Add($"{a} pinger → {b} echo");
    }

    /// <summary>Each call row's native figure is the caller runtime's native awaited call in that mode.</summary>
    public void MergeCalls(List<CallRow> rows, List<NativeCall> csharpNative)
    {
        NativeCalls.AddRange(csharpNative);
        foreach (string rt in new[] { "Rust", "C++" }) NativeCalls.AddRange(Native.Calls(rt));
        Calls.AddRange(rows);
        foreach (var row in Calls)
        {
            var n = NativeCalls.FirstOrDefault(c => c.Runtime == row.Caller && c.Mode == row.Mode);
            row.NativeNs = n?.Ns?.Median;
            row.NativeWhat = n?.What ?? $"not measured: no native {row.Mode} call for {row.Caller}";
        }
    }

    /// <summary>The .NET strategy rows and the native programs' rows; each row's ratio_vs_poc is its
    /// ops/s ÷ the "poc" row's of the same pair, op and in-flight count (the poc row: 1).</summary>
    public void MergeStrategies(List<StrategyRow> dotnetRows)
    {
        Strategies.AddRange(dotnetRows);
        Strategies.AddRange(Native.Strategies);
        foreach (var row in Strategies)
        {
            var poc = Strategies.FirstOrDefault(p => p.Strategy == "poc" && p.Pair == row.Pair && p.Op == row.Op && p.InFlight == row.InFlight);
            row.RatioVsPoc = poc is null || poc.OpsPerSecond.Median <= 0 ? null : row.OpsPerSecond.Median / poc.OpsPerSecond.Median;
        }
    }
}
