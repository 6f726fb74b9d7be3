using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Poc.Bench;

/// <summary>Writes results.json, report.md and the charts' data files (throughput.dat, latency.dat, calls.dat).</summary>
internal static class Report
{
    private static readonly CultureInfo Ic = CultureInfo.InvariantCulture;

    private sealed record Target(string Name, string Status, string Detail);

    public static void WriteAll(string outDir, Results r)
    {
        var machine = Machine();
        var targets = Targets(r);
        WriteJson(Path.Combine(outDir, "results.json"), r, machine, targets);
        WriteMarkdown(Path.Combine(outDir, "report.md"), r, machine, targets);
        WriteThroughputDat(Path.Combine(outDir, "throughput.dat"), r.Throughput);
        WriteLatencyDat(Path.Combine(outDir, "latency.dat"), r.Latency);
        WriteCallsDat(Path.Combine(outDir, "calls.dat"), r.Calls);
        WriteStrategiesDat(Path.Combine(outDir, "strategies.dat"), r.Strategies);
    }

    // ---- machine ----

    private static string Sh(string file, string args)
    {
        try
        {
            var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var proc = Process.Start(psi)!;
            string s = proc.StandardOutput.ReadToEnd();
            proc.WaitForExit();
            return s.Split('\n')[0].Trim();
        }
        catch (Exception e) { return $"unavailable ({e.GetType().Name})"; }
    }

    /// <summary>scripts/bench passes the compiler versions it built with (POC_BENCH_CXX,
    /// POC_BENCH_RUSTC); without them the ones on PATH are asked.</summary>
    private static string FromEnvOr(string variable, string file, string args) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } v ? v : Sh(file, args);

    private static JsonObject Machine()
    {
        string os = "unknown";
        if (File.Exists("/etc/os-release"))
            foreach (var l in File.ReadAllLines("/etc/os-release"))
                if (l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal)) os = l[12..].Trim('"');
        return new JsonObject
        {
            ["cores"] = Environment.ProcessorCount,
            ["os"] = os,
            ["kernel"] = File.Exists("/proc/sys/kernel/osrelease")
                ? "Linux " + File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : RuntimeInformation.OSDescription,
            ["arch"] = RuntimeInformation.OSArchitecture.ToString(),
            ["cpu"] = Environment.GetEnvironmentVariable("POC_BENCH_CPU") ?? CpuModel(),
            ["cxx"] = FromEnvOr("POC_BENCH_CXX", "g++", "--version"),
            ["rustc"] = FromEnvOr("POC_BENCH_RUSTC", "rustc", "--version"),
            ["dotnet"] = RuntimeInformation.FrameworkDescription,
            ["native_build"] = Environment.GetEnvironmentVariable("POC_BENCH_BUILD_TYPE") ?? "unknown",
            ["date_utc"] = DateTime.UtcNow.ToString("u", Ic),
        };
    }

    private static string CpuModel()
    {
        try
        {
            foreach (var l in File.ReadLines("/proc/cpuinfo"))
                if (l.StartsWith("model name", StringComparison.Ordinal)) return l[(l.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        return "unknown";
    }

    // ---- targets (issue 7 item 4) ----

    private static List<Target> Targets(Results r)
    {
        var t = new List<Target>();
        if (!r.Sections.Contains("throughput"))
        {
            t.Add(new Target("throughput ≥ 0.8 × owner's native channel", "not measured", "throughput not run"));
        }
        else
        {
            var real = r.Throughput.Where(x => x.NativeIsReal).ToList();
            var proxy = r.Throughput.Where(x => !x.NativeIsReal && !(x.Producer == x.Owner && x.Owner == x.Consumer)).ToList();
            int met = real.Count(x => x.Ratio >= 0.8);
            var owners = string.Join(", ", real.Select(x => x.Owner).Distinct());
            t.Add(new Target($"throughput ≥ 0.8 × owner's native channel (owners with a native baseline: {owners})",
                real.Count == 0 ? "not measured" : met == real.Count ? "met" : "not met",
                real.Count == 0 ? "—" : $"{met} of {real.Count} rows meet it; worst ratio {real.Min(x => x.Ratio).ToString("F2", Ic)} ({Worst(real)})"));
            if (proxy.Count > 0)
            {
                int pm = proxy.Count(x => x.Ratio >= 0.8);
                var po = string.Join(", ", proxy.Select(x => x.Owner).Distinct());
                var pp = string.Join(", ", proxy.Select(x => $"{x.Owner} payload {x.Payload}").Distinct());
                t.Add(new Target($"throughput ≥ 0.8 × owner's native channel (owners {po})",
                    $"not measured (no native figure for {pp}: proxy baseline only)",
                    $"vs the Poc same-runtime proxy: {pm} of {proxy.Count} ≥ 0.8; worst {proxy.Min(x => x.Ratio).ToString("F2", Ic)}"));
            }
        }
        if (!r.Sections.Contains("latency"))
        {
            t.Add(new Target("cross-runtime RTT p50 ≤ the slower runtime's native RTT p50", "not measured", "latency not run"));
        }
        else
        {
            var cross = r.Latency.Where(x => x.A != x.B).ToList();
            var withNative = cross.Where(x => x.Ratio is not null).ToList();
            int met = withNative.Count(x => x.Ratio <= 1.0);
            var missing = cross.Where(x => x.Ratio is null).Select(x => $"{x.A}→{x.B}")
                .Concat(Results.LatencyPairs.Where(p => p.A != p.B && !r.Latency.Any(x => x.A == p.A && x.B == p.B)).Select(p => $"{p.A}→{p.B}"))
                .ToList();
            string detail = withNative.Count == 0 ? "—"
                : $"{met} of {withNative.Count} cross-runtime pairs meet it; worst ratio {withNative.Max(x => x.Ratio!.Value).ToString("F2", Ic)}";
            if (missing.Count > 0) detail += $"; not measured: {string.Join(", ", missing)}";
            t.Add(new Target("cross-runtime RTT p50 ≤ the slower runtime's native RTT p50",
                withNative.Count == 0 ? "not measured" : met == withNative.Count ? (missing.Count == 0 ? "met" : "met where measured") : "not met",
                detail));
        }
        if (r.Sections.Contains("calls"))
        {
            var measured = r.Calls.Where(c => c.Ratio is not null).ToList();
            t.Add(new Target("async calls vs the caller's native await (no numeric target set)", "reported",
                measured.Count == 0 ? "no ratios (native figures missing)"
                    : $"{measured.Count} of {r.Calls.Count} figures have a native ratio; ready: worst {Max(measured, "ready")}, posted: worst {Max(measured, "posted")}"));
        }
        t.AddRange(AllocationTargets(r));
        t.Add(CallAllocationTarget(r));
        t.Add(StrategyTarget(r));
        return t;
    }

    /// <summary>Allocations per async call: no numeric target in the issue; reported per runtime.</summary>
    private static Target CallAllocationTarget(Results r)
    {
        var rows = r.Native.CallAllocations;
        if (rows.Count == 0) return new Target("allocations per async call (no numeric target set)", "not measured", "no call_allocations rows");
        string Fig(JsonObject a)
        {
            string b = B(a["bytes_per_call"]?.GetValue<double>());
            string n = a["allocs_per_call"] is { } x ? $", {x.GetValue<double>().ToString("F3", Ic)} allocs" : "";
            string h = a["handler"] is { } hh ? $" {hh.GetValue<string>()}" : "";
            return $"{a["caller"]}→{a["callee"]} {a["mode"]}{h}: {b} B{n}";
        }
        return new Target("allocations per async call (no numeric target set)", "reported", string.Join("; ", rows.Select(Fig)));
    }

    /// <summary>Issue 7's strategy target: Poc ≥ 10 × mayon's blocking std::future strategy with 64
    /// sends in flight (the Rust→C++ send rows of the Rust program).</summary>
    private static Target StrategyTarget(Results r)
    {
        const string name = "≥ 10 × mayon's blocking std::future strategy with 64 sends in flight";
        if (!r.Sections.Contains("strategies")) return new Target(name, "not measured", "strategies not run");
        var mayon = r.Strategies.FirstOrDefault(x => x.Strategy == "blocking_future" && x.Op == "send" && x.InFlight == 64);
        if (mayon?.RatioVsPoc is not { } ratio)
            return new Target(name, "not measured", mayon is null ? "no blocking_future send row with 64 in flight (the Rust program's strategies)" : "no poc row for the same pair");
        double factor = 1 / ratio;
        var poc = r.Strategies.First(x => x.Strategy == "poc" && x.Pair == mayon.Pair && x.Op == "send" && x.InFlight == 64);
        return new Target(name, factor >= 10 ? "met" : "not met",
            $"{mayon.Pair}: Poc {poc.OpsPerSecond.Median.ToString("N0", Ic)} msgs/s vs blocking {mayon.OpsPerSecond.Median.ToString("N0", Ic)} msgs/s = {factor.ToString("F1", Ic)}×");
    }

    /// <summary>Fewer allocations per message than this reads as "no per-message allocation" (a few
    /// one-off allocations over thousands of messages are not per message).</summary>
    private const double PerMessageThreshold = 0.01;

    /// <summary>Issue 7's allocation target, one row per runtime: 0 bytes per message on the .NET
    /// import path; no per-message heap allocation on the Rust and C++ import paths in steady state.
    /// Judged on the payload-0 "adapter" rows (a non-empty payload adds the received copy by design).</summary>
    private static IEnumerable<Target> AllocationTargets(Results r)
    {
        var rows = r.Native.Allocations;
        var dn = rows.Where(a => a.Runtime == ".NET" && a.Payload == 0 && a.Scope == "adapter").ToList();
        var dnImport = dn.Where(a => !a.Path.Contains("(.NET channel)", StringComparison.Ordinal)).ToList();
        if (dnImport.Count == 0)
            yield return new Target("allocations: 0 bytes per message on the .NET import path", "not measured",
                $"no {NativeResults.MicroFileName} (Poc.Bench.Micro did not run)");
        else
        {
            var bad = dnImport.Where(a => a.BytesPerMsg is not 0).ToList();
            string own = string.Join("; ", dn.Where(a => !dnImport.Contains(a)).Select(a => $"{a.Path}: {B(a.BytesPerMsg)} B (exporter .NET included)"));
            yield return new Target("allocations: 0 bytes per message on the .NET import path (payload 0, channels owned by C++ and Rust)",
                bad.Count == 0 ? "met" : "not met",
                (bad.Count == 0 ? $"0 B/msg in all {dnImport.Count} rows" : string.Join("; ", bad.Select(a => $"{a.Path}: {B(a.BytesPerMsg)} B/msg"))) +
                (own.Length > 0 ? $"; for reference, .NET-owned: {own}" : ""));
        }
        foreach (var rt in new[] { "Rust", "C++" })
        {
            var ad = rows.Where(a => a.Runtime == rt && a.Payload == 0 && a.Scope == "adapter" && a.Messages > 0).ToList();
            string name = $"allocations: no per-message heap allocation on the {rt} import path in steady state (payload 0)";
            if (ad.Count == 0)
            {
                yield return new Target(name, "not measured", $"no allocation rows from the {rt} native program");
                continue;
            }
            var bad = ad.Where(a => (a.AllocsPerMsg ?? 0) >= PerMessageThreshold).ToList();
            yield return new Target(name, bad.Count == 0 ? "met" : "not met",
                bad.Count == 0
                    ? $"< {PerMessageThreshold.ToString(Ic)} allocations per message in all {ad.Count} op classes (max {ad.Max(a => a.AllocsPerMsg ?? 0).ToString("F3", Ic)})"
                    : string.Join("; ", bad.Select(a => $"{a.Path}: {(a.AllocsPerMsg ?? 0).ToString("F3", Ic)} allocs, {B(a.BytesPerMsg)} B per message")));
        }
    }

    private static string Worst(List<ThroughputRow> rows)
    {
        var w = rows.MinBy(x => x.Ratio)!;
        return $"{w.Producer}→{w.Owner}→{w.Consumer}, payload {w.Payload}";
    }

    private static string Max(List<CallRow> rows, string mode) =>
        rows.Where(c => c.Mode == mode).Select(c => c.Ratio!.Value).DefaultIfEmpty(double.NaN).Max().ToString("F2", Ic);

    // ---- results.json ----

    private static JsonNode? N(double? v, int digits = 0) => v is { } d ? JsonValue.Create(Math.Round(d, digits)) : null;

    private static void WriteJson(string path, Results r, JsonObject machine, List<Target> targets)
    {
        var cfg = r.Config;
        var tp = new JsonArray();
        foreach (var x in r.Throughput)
            tp.Add(new JsonObject
            {
                ["producer"] = x.Producer, ["owner"] = x.Owner, ["consumer"] = x.Consumer,
                ["payload"] = x.Payload, ["capacity"] = x.Capacity,
                ["msgs_per_s"] = Math.Round(x.Poc.Median), ["msgs_per_s_min"] = Math.Round(x.Poc.Min),
                ["msgs_per_s_max"] = Math.Round(x.Poc.Max),
                ["native_msgs_per_s"] = Math.Round(x.Native.Median), ["native_kind"] = x.NativeKind,
                ["native_is_proxy"] = !x.NativeIsReal,
                ["ratio"] = Math.Round(x.Ratio, 3),
            });
        var lat = new JsonArray();
        foreach (var x in r.Latency)
            lat.Add(new JsonObject
            {
                ["a"] = x.A, ["b"] = x.B,
                ["rtt_ns_p50"] = N(x.P50), ["rtt_ns_p99"] = N(x.P99),
                ["native_rtt_ns_p50"] = N(x.NativeP50), ["ratio"] = N(x.Ratio, 3),
                ["rtt_ns_p50_min"] = N(x.P50Spread?.Min), ["rtt_ns_p50_max"] = N(x.P50Spread?.Max),
                ["samples"] = x.Samples, ["runs"] = x.Runs, ["payload"] = x.Payload,
                ["source"] = x.Source, ["what"] = x.What, ["native"] = x.NativeNote,
            });
        var natLat = new JsonArray();
        foreach (var x in r.NativeLatency)
            natLat.Add(new JsonObject
            {
                ["runtime"] = x.Runtime, ["rtt_ns_p50"] = N(x.P50), ["rtt_ns_p99"] = N(x.P99),
                ["samples"] = x.Samples, ["payload"] = x.Payload, ["what"] = x.What,
            });
        var calls = new JsonArray();
        foreach (var x in r.Calls)
            calls.Add(new JsonObject
            {
                ["caller"] = x.Caller, ["callee"] = x.Callee, ["mode"] = x.Mode,
                ["ns_per_call"] = N(x.NsPerCall?.Median, 1), ["native_ns_per_call"] = N(x.NativeNs, 1),
                ["ratio"] = N(x.Ratio, 3),
                ["ns_per_call_min"] = N(x.NsPerCall?.Min, 1), ["ns_per_call_max"] = N(x.NsPerCall?.Max, 1),
                ["calls_per_run"] = x.Count, ["runs"] = x.Runs, ["how"] = x.Note, ["native"] = x.NativeWhat,
            });
        var natCalls = new JsonArray();
        foreach (var x in r.NativeCalls)
            natCalls.Add(new JsonObject
            {
                ["runtime"] = x.Runtime, ["mode"] = x.Mode, ["ns_per_call"] = N(x.Ns?.Median, 1),
                ["ns_per_call_min"] = N(x.Ns?.Min, 1), ["ns_per_call_max"] = N(x.Ns?.Max, 1), ["what"] = x.What,
            });
        var tg = new JsonArray();
        foreach (var x in targets) tg.Add(new JsonObject { ["target"] = x.Name, ["status"] = x.Status, ["detail"] = x.Detail });
        var notMeasured = new JsonArray();
        foreach (var s in r.LatencyNotMeasured) notMeasured.Add($"latency: {s}");
        foreach (var c in r.Calls.Where(c => c.NsPerCall is null)) notMeasured.Add($"calls: {c.Caller} → {c.Callee} {c.Mode}: {c.Note}");
        foreach (var m in r.Native.Missing) notMeasured.Add($"native results missing: {m}");
        if (r.Native.MicroFile is null) notMeasured.Add($".NET microbenchmarks and allocations: {NativeResults.MicroFileName} missing (Poc.Bench.Micro did not run)");
        var strategies = new JsonArray();
        foreach (var x in r.Strategies)
            strategies.Add(new JsonObject
            {
                ["strategy"] = x.Strategy, ["label"] = x.Label, ["pair"] = x.Pair, ["op"] = x.Op, ["in_flight"] = x.InFlight,
                ["msgs_per_s"] = Math.Round(x.OpsPerSecond.Median), ["msgs_per_s_min"] = Math.Round(x.OpsPerSecond.Min),
                ["msgs_per_s_max"] = Math.Round(x.OpsPerSecond.Max), ["ratio_vs_poc"] = N(x.RatioVsPoc, 4),
                ["cpu_ns_per_op"] = double.IsFinite(x.CpuNsPerOp) ? Math.Round(x.CpuNsPerOp) : null,
                ["bytes_per_op"] = N(x.BytesPerOp, 1),
                ["pending_share"] = N(x.PendingShare?.Median, 4), ["pending_share_min"] = N(x.PendingShare?.Min, 4),
                ["pending_share_max"] = N(x.PendingShare?.Max, 4),
                ["ops_per_run"] = x.Ops, ["runs"] = x.Runs, ["source"] = x.Source, ["what"] = x.What,
            });
        var callAllocs = new JsonArray();
        foreach (var a in r.Native.CallAllocations) callAllocs.Add(a.DeepClone());
        var allocs = new JsonArray();
        foreach (var a in r.Native.Allocations) allocs.Add(a.Raw.DeepClone());
        var micro = new JsonArray();
        foreach (var m in r.Native.Micro)
            micro.Add(new JsonObject
            {
                ["runtime"] = ".NET", ["benchmark"] = m.Benchmark, ["path"] = m.Path, ["owner"] = m.Owner, ["payload"] = m.Payload,
                ["mean_ns"] = N(m.MeanNs, 1), ["stddev_ns"] = N(m.StdDevNs, 1),
                ["bytes_per_msg"] = r.Native.Allocations.FirstOrDefault(a => a.Runtime == ".NET" && a.Path == m.Path && a.Payload == m.Payload)?.BytesPerMsg,
                ["what"] = m.What, ["source"] = NativeResults.MicroFileName,
            });
        foreach (var m in r.Native.NativeMicro)
            micro.Add(new JsonObject
            {
                ["runtime"] = m.Runtime, ["benchmark"] = m.Benchmark, ["mean_ns"] = N(m.MeanNs, 2), ["stddev_ns"] = N(m.StdDevNs, 2),
                ["median_ns"] = N(m.MedianNs, 2), ["what"] = m.What, ["source"] = m.Source,
            });
        var root = new JsonObject
        {
            ["mode"] = cfg.Mode,
            ["sections"] = new JsonArray(r.Sections.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
            ["method"] = new JsonObject
            {
                ["throughput"] = new JsonObject { ["messages_per_run"] = cfg.ThroughputMessages, ["warmup_runs"] = 1, ["runs"] = cfg.ThroughputRuns, ["statistic"] = "median (min/max spread kept)" },
                ["latency"] = new JsonObject { ["warmup_round_trips"] = BenchConfig.LatencyWarmup, ["samples_per_run"] = cfg.LatencySamples, ["runs"] = cfg.LatencyRuns, ["payload"] = BenchConfig.LatencyPayload, ["capacity"] = BenchConfig.LatencyCapacity, ["statistic"] = "per run: nearest-rank p50/p99 of the sorted round trips; reported: median of the runs' p50 and p99 (min/max of the p50s kept)" },
                ["calls"] = new JsonObject { ["ready_calls_per_run"] = cfg.ReadyCalls, ["posted_calls_per_run"] = cfg.PostedCalls, ["warmup_runs"] = 1, ["runs"] = cfg.CallRuns, ["statistic"] = "ns/call = elapsed / calls per run; median (min/max spread kept)" },
                ["strategies"] = new JsonObject { ["dotnet_calls_per_run"] = cfg.StrategyCalls, ["runs"] = cfg.StrategyRuns, ["in_flight"] = new JsonArray(1, 64), ["statistic"] = "ops/s per run; median (min/max spread kept); ratio_vs_poc = ops/s ÷ the poc row's of the same pair, op and in-flight count; cpu_ns_per_op = process CPU time (all threads) ÷ ops, median of the timed runs" },
            },
            ["targets"] = tg,
            ["throughput"] = tp,
            ["latency"] = lat,
            ["native_latency"] = natLat,
            ["calls"] = calls,
            ["native_calls"] = natCalls,
            ["allocations"] = allocs,
            ["call_allocations"] = callAllocs,
            ["microbenchmarks"] = micro,
            ["strategies"] = strategies,
            ["not_measured"] = notMeasured,
            ["machine"] = machine,
        };
        File.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    // ---- gnuplot data ----

    private static string D(double? v) => v is { } d ? d.ToString("F1", Ic) : "NaN";

    private static void WriteThroughputDat(string path, List<ThroughputRow> rows)
    {
        using var w = new StreamWriter(path);
        w.WriteLine("# combination payload0_ratio payload64_ratio payload4096_ratio");
        foreach (var g in rows.GroupBy(x => $"{Measure.Short(x.Producer)}>{Measure.Short(x.Owner)}>{Measure.Short(x.Consumer)}"))
        {
            w.Write(g.Key);
            foreach (int p in Throughput.Payloads)
                w.Write(" " + (g.FirstOrDefault(x => x.Payload == p) is { } x ? x.Ratio.ToString("F3", Ic) : "NaN"));
            w.WriteLine();
        }
    }

    private static void WriteLatencyDat(string path, List<LatencyRow> rows)
    {
        using var w = new StreamWriter(path);
        w.WriteLine("# pinger>echo rtt_p50_ns rtt_p99_ns native_p50_ns (NaN: not measured)");
        foreach (var x in rows)
            w.WriteLine($"{Measure.Short(x.A)}>{Measure.Short(x.B)} {D(x.P50)} {D(x.P99)} {D(x.NativeP50)}");
    }

    private static void WriteCallsDat(string path, List<CallRow> rows)
    {
        using var w = new StreamWriter(path);
        w.WriteLine("# caller>callee ready_ns posted_ns native_ready_ns native_posted_ns (caller's native; NaN: not measured)");
        foreach (var g in rows.GroupBy(x => $"{Measure.Short(x.Caller)}>{Measure.Short(x.Callee)}"))
        {
            var ready = g.FirstOrDefault(x => x.Mode == "ready");
            var posted = g.FirstOrDefault(x => x.Mode == "posted");
            w.WriteLine($"{g.Key} {D(ready?.NsPerCall?.Median)} {D(posted?.NsPerCall?.Median)} {D(ready?.NativeNs)} {D(posted?.NativeNs)}");
        }
    }

    private static void WriteStrategiesDat(string path, List<StrategyRow> rows)
    {
        using var w = new StreamWriter(path);
        string[] ids = ["poc", "blocking_future", "busy_polling", "tcs_locked_dictionary", "continuation_per_poll"];
        w.WriteLine("# pair_op_inflight " + string.Join(" ", ids) + " (ops/s; NaN: not measured for that row)");
        foreach (var g in rows.GroupBy(x => $"{Measure.Short(x.Pair.Split('→')[0])}>{Measure.Short(x.Pair.Split('→')[^1])}_{x.Op}_x{x.InFlight}"))
            w.WriteLine(g.Key + " " + string.Join(" ", ids.Select(id => D(g.FirstOrDefault(x => x.Strategy == id)?.OpsPerSecond.Median))));
    }

    // ---- report.md ----

    private static string F0(double? v) => v is { } d ? d.ToString(d < 10 ? "F2" : d < 100 ? "F1" : "N0", Ic) : "—";
    private static string F2(double? v) => v is { } d ? d.ToString("F2", Ic) : "—";

    /// <summary>A share as "median % (min–max %)", or "—".</summary>
    private static string Percent(Stats? s) => s is { } p
        ? p.Min == p.Max ? $"{(p.Median * 100).ToString("F1", Ic)} %" : $"{(p.Median * 100).ToString("F1", Ic)} % ({(p.Min * 100).ToString("F1", Ic)}–{(p.Max * 100).ToString("F1", Ic)})"
        : "—";

    private static void WriteMarkdown(string path, Results r, JsonObject m, List<Target> targets)
    {
        var cfg = r.Config;
        using var w = new StreamWriter(path);
        w.WriteLine($"# Poc benchmark report ({cfg.Mode} run, {DateTime.UtcNow.ToString("u", Ic)})");
        w.WriteLine();
        w.WriteLine($"Machine: {m["cores"]} cores ({m["cpu"]}), {m["os"]}, {m["cxx"]}, {m["rustc"]}, {m["dotnet"]}; native build {m["native_build"]}. " +
                    "The machine may be shared: absolute figures are noisy, same-run ratios are what to compare.");
        w.WriteLine();
        w.WriteLine($"Native benchmark programs (bench/native/run): {(r.Native.Found.Count > 0 ? "read " + string.Join(", ", r.Native.Found) : "none")}" +
                    $"{(r.Native.Missing.Count > 0 ? "; missing " + string.Join(", ", r.Native.Missing) : "")}.");
        w.WriteLine();
        w.WriteLine("## Targets");
        w.WriteLine();
        w.WriteLine("| target | status | figures |");
        w.WriteLine("|---|---|---|");
        foreach (var t in targets) w.WriteLine($"| {t.Name} | {t.Status} | {t.Detail} |");

        if (r.Sections.Contains("throughput")) WriteThroughput(w, r);
        if (r.Sections.Contains("latency")) WriteLatency(w, r);
        if (r.Sections.Contains("calls")) WriteCalls(w, r);
        if (r.Sections.Contains("strategies")) WriteStrategies(w, r);
        WriteAllocations(w, r);
        WriteCallAllocations(w, r);
        WriteMicro(w, r);
        WriteNativeMicro(w, r);

        w.WriteLine();
        w.WriteLine("## Not measured in this run");
        w.WriteLine();
        foreach (var s in SectionsNotRun(r)) w.WriteLine($"- {s}: section not run (--only)");
        foreach (var s in r.LatencyNotMeasured) w.WriteLine($"- latency {s}: no figure (its native pinger did not run)");
        foreach (var c in r.Calls.Where(c => c.NsPerCall is null)) w.WriteLine($"- call {c.Caller} → {c.Callee} ({c.Mode}): {c.Note}");
        foreach (var s in r.Native.Missing) w.WriteLine($"- native results of {s}: the affected baselines are proxies or empty (—)");
        if (r.Native.MicroFile is null) w.WriteLine($"- .NET allocations per message and microbenchmarks: {NativeResults.MicroFileName} missing (Poc.Bench.Micro did not run)");
        if (r.Native.CallAllocations.Count == 0) w.WriteLine("- allocations per async call: no call_allocations rows in the files read");
        if (SectionsNotRun(r).Any() || r.LatencyNotMeasured.Count > 0 || r.Calls.Any(c => c.NsPerCall is null)
            || r.Native.Missing.Count > 0 || r.Native.MicroFile is null || r.Native.CallAllocations.Count == 0) return;
        w.WriteLine("Nothing: every section ran and every figure has a row.");
    }

    private static string B(double? v) => v is { } d ? d.ToString(d == Math.Floor(d) ? "F0" : "F3", Ic) : "—";

    private static void WriteAllocations(StreamWriter w, Results r)
    {
        var rows = r.Native.Allocations;
        w.WriteLine();
        w.WriteLine("## Allocations per message");
        w.WriteLine();
        if (rows.Count == 0)
        {
            w.WriteLine("Not measured in this run (no allocation rows in the native files nor in dotnet-micro.json).");
            return;
        }
        w.WriteLine("Heap allocations per message on each runtime's **import path** (the adapter that turns a foreign port into the runtime's own async channel end), in steady state after warm-up. " +
                    "**Rust**: a counting `#[global_allocator]` (wrapping System, process-wide atomic counters, all threads) in poc-bench-native-rust, against channels owned by C++ (whose allocations go to malloc and are not counted). " +
                    "**C++**: a replacement of every global `operator new` form (process-wide atomic counters, all threads) in poc_bench_native_cpp, against channels owned by Rust (Rust allocates with malloc, not counted); coroutines (`as_tuple(use_awaitable)`) and plain callback handlers. " +
                    "**.NET**: BenchmarkDotNet's MemoryDiagnoser (bytes allocated on all threads ÷ operations; it gives no allocation count, so allocs/msg is —) in Poc.Bench.Micro, against channels owned by C++, Rust and .NET (a .NET-owned channel includes the .NET exporter's allocations, same process).");
        w.WriteLine();
        w.WriteLine("**scope** adapter = counted from just before the op until its completion ran (Rust/C++), or the benchmark operation itself (.NET: the message written is made once); total = the whole test loop per message, including the test's own message. " +
                    "**Payload 0** is the adapter's own figure (no payload buffer anywhere); with a payload, a receive copies it into a new buffer per message by design (`Vec` / `std::vector` / `byte[]`). " +
                    "*fast* = the op completed in the port call; *pending* = the port answered PENDING and the exporter's callback completed it (Rust/C++: classified per op; .NET: a read issued on the empty channel).");
        w.WriteLine();
        w.WriteLine("| runtime | path | payload | scope | B/msg | allocs/msg | messages | source |");
        w.WriteLine("|---|---|---:|---|---:|---:|---:|---|");
        foreach (var a in rows)
            w.WriteLine($"| {a.Runtime} | {a.Path} | {a.Payload} | {a.Scope} | {B(a.BytesPerMsg)} | {B(a.AllocsPerMsg)} | {a.Messages:N0} | {a.Source} |");
        w.WriteLine();
        w.WriteLine("Each row's `what` in results.json says exactly what was counted (op counts per class, windows, exporter).");
    }

    private static void WriteStrategies(StreamWriter w, Results r)
    {
        w.WriteLine();
        w.WriteLine("## Strategies: the peers' designs as baselines");
        w.WriteLine();
        if (r.Strategies.Count == 0)
        {
            w.WriteLine("No strategy rows in this run.");
            return;
        }
        w.WriteLine("Each peer's way of awaiting a foreign operation, reimplemented here as a clearly labelled baseline, beside Poc's wake-up adapter on the same work in the same run. " +
                    "**Rust→C++ send** (the Rust program; mayon asio-poc's own direction): a Rust producer sends into a C++-owned Asio `concurrent_channel` (capacity 1024) drained by a C++ coroutine. " +
                    "`blocking_future` re-implements mayon's design (a `std::promise`/`std::future` per send, fulfilled by the send's handler on the `io_context` thread; the Rust `poll` blocks in `std::future::wait()`), `busy_polling` polls the same future without blocking and wakes itself at once, `poc` is `PortSender::send().await` on a Poc C++ channel. " +
                    "**C#→Rust / C#→C++ call**: C# awaits the callee's \"square\" in POSTED mode (every call goes PENDING and is woken from the callee runtime's thread) — `tcs_locked_dictionary` (Interoptopus' generated C#: a `TaskCompletionSource` per call in a locked static dictionary, delegate-marshalled callback), `continuation_per_poll` (UniFFI's and BoltFFI's foreign polling loop: a new continuation object per poll), `poc` (`ImportedFunction.SquareAsync`). " +
                    "**in flight** 1 = one loop; 64 = 64 concurrent tasks sharing the work. **ratio vs Poc** = ops/s ÷ Poc's ops/s on the same row (below 1: slower than Poc). **CPU ns/op** = process CPU time (all threads) ÷ ops: a strategy that spins shows it there. **B/op** (.NET rows) = managed bytes allocated on all threads ÷ ops (`GC.GetTotalAllocatedBytes`). **pending** (Rust→C++ `poc` rows) = share of the sends whose first poll returned Pending — the channel was full, so the send waited for room and completed through the exporter's pending path and a wake — median with min–max over the timed runs. Each row's `what` in results.json says exactly what runs.");
        w.WriteLine();
        w.WriteLine("| pair | op | in flight | strategy | ops/s (median) | spread | ratio vs Poc | CPU ns/op | B/op | pending | source |");
        w.WriteLine("|---|---|---:|---|---:|---|---:|---:|---:|---|---|");
        foreach (var x in r.Strategies.OrderBy(x => x.Pair).ThenBy(x => x.InFlight).ThenBy(x => x.Strategy == "poc" ? 0 : 1).ThenBy(x => x.Strategy))
            w.WriteLine($"| {x.Pair} | {x.Op} | {x.InFlight} | {(x.Strategy == "poc" ? "**poc**" : x.Strategy)}: {x.Label} | {x.OpsPerSecond.Median.ToString("N0", Ic)} | {x.OpsPerSecond.Min.ToString("N0", Ic)}–{x.OpsPerSecond.Max.ToString("N0", Ic)} | {F2(x.RatioVsPoc)} | {(double.IsFinite(x.CpuNsPerOp) ? x.CpuNsPerOp.ToString("N0", Ic) : "—")} | {(x.BytesPerOp is { } bo ? bo.ToString("F0", Ic) : "—")} | {Percent(x.PendingShare)} | {x.Source} |");
        w.WriteLine();
        w.WriteLine("![Strategies](strategies.svg)");
    }

    private static void WriteCallAllocations(StreamWriter w, Results r)
    {
        var rows = r.Native.CallAllocations;
        if (rows.Count == 0) return;
        w.WriteLine();
        w.WriteLine("## Allocations per async call");
        w.WriteLine();
        w.WriteLine("What the **caller's** import of an async call (the continuation-polled future) allocates per call in steady state, with the same tools as the per-message figures: Rust's counting global allocator, C++'s counting `operator new`, .NET's MemoryDiagnoser (bytes only). " +
                    "The callee is another runtime, whose allocations go to its own allocator and are not counted (each row's `what` says so). *ready*: the first poll answers; *posted*: the callee's runtime thread finishes the call and wakes the caller.");
        w.WriteLine();
        w.WriteLine("| caller | callee | mode | handler | B/call | allocs/call | calls | source |");
        w.WriteLine("|---|---|---|---|---:|---:|---:|---|");
        foreach (var a in rows)
            w.WriteLine($"| {a["caller"]} | {a["callee"]} | {a["mode"]} | {a["handler"]?.GetValue<string>() ?? "—"} | {B(a["bytes_per_call"]?.GetValue<double>())} | {B(a["allocs_per_call"]?.GetValue<double>())} | {(a["calls"]?.GetValue<double>() is { } c ? c.ToString("N0", Ic) : "—")} | {a["source"]} |");
    }

    private static void WriteNativeMicro(StreamWriter w, Results r)
    {
        if (r.Native.NativeMicro.Count == 0) return;
        w.WriteLine();
        w.WriteLine("## Microbenchmarks (Rust: criterion; C++: Google Benchmark)");
        w.WriteLine();
        foreach (var (rt, tool) in r.Native.NativeMicroTools) w.WriteLine($"- {rt}: {tool}");
        w.WriteLine();
        w.WriteLine("| runtime | benchmark | mean ns | stddev ns | median ns | what |");
        w.WriteLine("|---|---|---:|---:|---:|---|");
        foreach (var m in r.Native.NativeMicro)
            w.WriteLine($"| {m.Runtime} | {m.Benchmark} | {F0(m.MeanNs)} | {F0(m.StdDevNs)} | {F0(m.MedianNs)} | {m.What} |");
    }

    private static void WriteMicro(StreamWriter w, Results r)
    {
        if (r.Native.Micro.Count == 0) return;
        w.WriteLine();
        w.WriteLine("## Microbenchmarks (.NET import path, BenchmarkDotNet)");
        w.WriteLine();
        w.WriteLine($"Poc.Bench.Micro: {r.Native.MicroTool}. One operation = one message through `SenderPort.ToWriter()` / `ReceiverPort.ToReader()` on a channel of capacity 1 owned by the given runtime (1 runtime thread). " +
                    "**Fast**: `WriteAsync` then `ReadAsync` with room — both complete in the port call. **Pending**: `ReadAsync` on the empty channel, then the `WriteAsync` that completes it through the exporter's callback; the read's continuation runs on the thread pool (a cross-thread hop for C++/Rust owners).");
        w.WriteLine();
        w.WriteLine("| benchmark | owner | payload | mean ns/msg | stddev ns | B/msg |");
        w.WriteLine("|---|---|---:|---:|---:|---:|");
        foreach (var m in r.Native.Micro)
        {
            var a = r.Native.Allocations.FirstOrDefault(x => x.Runtime == ".NET" && x.Path == m.Path && x.Payload == m.Payload);
            // CallBenchmarks rows carry their mode in the path ("call ready (Rust callee)").
            string name = m.Benchmark == "Call" && m.Path.Split(' ') is [_, var mode, ..] ? $"Call ({mode})" : m.Benchmark;
            w.WriteLine($"| {name} | {m.Owner} | {m.Payload} | {F0(m.MeanNs)} | {F0(m.StdDevNs)} | {B(a?.BytesPerMsg)} |");
        }
    }

    private static IEnumerable<string> SectionsNotRun(Results r) =>
        new[] { "throughput", "latency", "calls", "strategies" }.Where(s => !r.Sections.Contains(s));

    private static void WriteThroughput(StreamWriter w, Results r)
    {
        var cfg = r.Config;
        w.WriteLine();
        w.WriteLine($"## Throughput (capacity {BenchConfig.ThroughputCapacity})");
        w.WriteLine();
        w.WriteLine("Producer agent in P → channel owned by O → consumer agent in C. msgs/s is the median; spread is min–max of the timed runs. " +
                    $"Each figure: 1 warm-up run, then {cfg.ThroughputRuns} timed runs of {cfg.ThroughputMessages:N0} messages; every run checks that the consumer got all messages in order. ratio = msgs/s ÷ baseline msgs/s (higher is better).");
        w.WriteLine();
        w.WriteLine("**Baselines:** owner .NET → a plain System.Threading.Channels bounded channel with a producer Task and a consumer Task, measured in this run. " +
                    "Owners C++ and Rust → the native program's plain channel (tokio mpsc / Asio concurrent_channel) from bench/native when its results exist (\"native\"); otherwise a **proxy**: the Poc same-runtime figure (e.g. C++ agents on a C++ channel), which is *not* a ratio to native.");
        w.WriteLine();
        w.WriteLine("![throughput ratio](throughput_ratio.svg)");
        foreach (int p in Throughput.Payloads)
        {
            var rows = r.Throughput.Where(x => x.Payload == p).ToList();
            if (rows.Count == 0) continue;
            w.WriteLine();
            w.WriteLine($"### Payload {p} bytes");
            w.WriteLine();
            w.WriteLine("| producer | owner | consumer | msgs/s (median) | spread (min–max) | baseline msgs/s | baseline | ratio |");
            w.WriteLine("|---|---|---|---:|---|---:|---|---:|");
            foreach (var x in rows)
                w.WriteLine($"| {x.Producer} | {x.Owner} | {x.Consumer} | {F0(x.Poc.Median)} | {F0(x.Poc.Min)}–{F0(x.Poc.Max)} | {F0(x.Native.Median)} | {(x.NativeIsReal ? "native" : "proxy")} | {F2(x.Ratio)} |");
        }
        var kinds = r.Throughput.Select(x => (x.Owner, x.NativeKind)).Distinct().ToList();
        w.WriteLine();
        w.WriteLine("Baselines used:");
        w.WriteLine();
        foreach (var (owner, kind) in kinds) w.WriteLine($"- owner {owner}: {kind}");
    }

    private static void WriteLatency(StreamWriter w, Results r)
    {
        var cfg = r.Config;
        w.WriteLine();
        w.WriteLine($"## Latency (ping-pong round trip, {BenchConfig.LatencyPayload}-byte payload)");
        w.WriteLine();
        w.WriteLine($"A pinger of runtime A sends one message to channel X (owned by B) and awaits its echo on channel Y (owned by A); an echo agent of runtime B receives from X and sends to Y. One message in flight; capacity {BenchConfig.LatencyCapacity}; every echo is checked (same id, same bytes). " +
                    $".NET pinger rows (this program): per run {BenchConfig.LatencyWarmup:N0} warm-up round trips, then {cfg.LatencySamples:N0} timed ones, p50/p99 of the sorted samples (nearest rank); {cfg.LatencyRuns} runs on fresh channels, the median of the runs' p50 (and p99) is reported, spread = min–max of the runs' p50. " +
                    "Rust/C++ pinger rows come from the native programs (bench/native).");
        w.WriteLine();
        w.WriteLine("native p50 = the slower (larger) of the two runtimes' plain native ping-pong p50s (A = B: that runtime's); ratio = p50 ÷ native p50 (≤ 1 meets the target).");
        w.WriteLine();
        w.WriteLine("![latency](latency.svg)");
        w.WriteLine();
        w.WriteLine("| pinger → echo | p50 ns | p99 ns | p50 spread (runs) | native p50 ns | native | ratio | source |");
        w.WriteLine("|---|---:|---:|---|---:|---|---:|---|");
        foreach (var x in r.Latency)
            w.WriteLine($"| {x.A} → {x.B} | {F0(x.P50)} | {F0(x.P99)} | {(x.P50Spread is { } s ? $"{F0(s.Min)}–{F0(s.Max)}" : "—")} | {F0(x.NativeP50)} | {x.NativeNote} | {F2(x.Ratio)} | {x.Source} |");
        foreach (var s in r.LatencyNotMeasured) w.WriteLine($"| {s.Replace(" pinger → ", " → ").Replace(" echo", "")} | — | — | — | — | not measured | — | — |");
        w.WriteLine();
        w.WriteLine("Native ping-pong baselines (no Poc code):");
        w.WriteLine();
        w.WriteLine("| runtime | p50 ns | p99 ns | what |");
        w.WriteLine("|---|---:|---:|---|");
        foreach (var n in r.NativeLatency) w.WriteLine($"| {n.Runtime} | {F0(n.P50)} | {F0(n.P99)} | {n.What} |");
        foreach (var rt in new[] { "C++", "Rust" }.Where(rt => !r.NativeLatency.Any(n => n.Runtime == rt)))
            w.WriteLine($"| {rt} | — | — | not measured (no native results) |");
    }

    private static void WriteCalls(StreamWriter w, Results r)
    {
        var cfg = r.Config;
        w.WriteLine();
        w.WriteLine("## Async calls (continuation-polled futures)");
        w.WriteLine();
        w.WriteLine($"The caller awaits the callee's lent \"square\" function {cfg.ReadyCalls:N0} times (ready) or {cfg.PostedCalls:N0} times (posted) per run, one call after the other; 1 warm-up run, then {cfg.CallRuns} timed runs, median ns/call with min–max spread; every run checks the sum of the squares. " +
                    "**ready**: the callee computes inside the call (POC_SQUARE_READY; a C# body returning a completed ValueTask): the first poll answers, no wake. " +
                    "**posted**: the callee finishes on another thread of its runtime, which wakes the caller (POC_SQUARE_POSTED: a tokio task / an asio::post on the io_context; the C# body: `Task.Run` on the thread pool). " +
                    "Caller C#: a C# loop awaiting `ImportedFunction.SquareAsync`, ns/call = elapsed ÷ calls. Callers Rust and C++: `RustCalls.SumCallsAsync` / `CppCalls.SumCallsAsync` — one .NET await around `count` native awaits, ns/call = elapsed ÷ count (the one outer await is amortised over the count).");
        w.WriteLine();
        w.WriteLine("native ns/call = the caller runtime's own await of an equivalent call with no Poc code (C#: measured here; Rust/C++: from the native programs); ratio = ns/call ÷ native ns/call (lower is better).");
        w.WriteLine();
        w.WriteLine("![calls](calls.svg)");
        w.WriteLine();
        w.WriteLine("| caller → callee | mode | ns/call (median) | spread (min–max) | native ns/call | ratio |");
        w.WriteLine("|---|---|---:|---|---:|---:|");
        foreach (var x in r.Calls)
            w.WriteLine($"| {x.Caller} → {x.Callee} | {x.Mode} | {F0(x.NsPerCall?.Median)} | {(x.NsPerCall is { } s ? $"{F0(s.Min)}–{F0(s.Max)}" : "not measured")} | {F0(x.NativeNs)} | {F2(x.Ratio)} |");
        w.WriteLine();
        w.WriteLine("Native awaited calls (no Poc code):");
        w.WriteLine();
        w.WriteLine("| runtime | mode | ns/call | spread (min–max) | what |");
        w.WriteLine("|---|---|---:|---|---|");
        foreach (var n in r.NativeCalls)
            w.WriteLine($"| {n.Runtime} | {n.Mode} | {F0(n.Ns?.Median)} | {(n.Ns is { } s ? $"{F0(s.Min)}–{F0(s.Max)}" : "—")} | {n.What} |");
        foreach (var rt in new[] { "Rust", "C++" })
        foreach (var mode in Calls.Modes)
            if (!r.NativeCalls.Any(n => n.Runtime == rt && n.Mode == mode)) w.WriteLine($"| {rt} | {mode} | — | — | not measured (no native results) |");
        w.WriteLine();
        w.WriteLine("The *posted* baselines park and wake threads (futex), so on a loaded machine they vary the most; read their spread before a ratio.");
        var notes = r.Calls.Where(c => c.NsPerCall is null).Select(c => $"{c.Caller} → {c.Callee}: {c.Note}").Distinct().ToList();
        if (notes.Count > 0)
        {
            w.WriteLine();
            foreach (var n in notes) w.WriteLine($"- {n}");
        }
    }
}
