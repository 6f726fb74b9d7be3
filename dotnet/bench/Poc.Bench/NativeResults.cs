using System.Text.Json;
using System.Text.Json.Nodes;

namespace Poc.Bench;

/// <summary>
/// The results of the native benchmark programs (bench/native/run OUT_DIR): OUT_DIR/native-rust.json
/// and OUT_DIR/native-cpp.json, one object each with "runtime", "native_throughput",
/// "native_latency", "latency" (a native pinger of runtime a against an echo agent of runtime b) and
/// "native_calls", "allocations" (allocations per message of the runtime's import path),
/// "call_allocations" (per async call) and, from the Rust program, "strategies" (the peers'
/// designs as baselines). Also the .NET microbenchmarks of Poc.Bench.Micro
/// (OUT_DIR/dotnet-micro.json: "allocations" and "call_allocations" in the same schema and "micro"
/// timings) and the Rust/C++ microbenchmark summaries (OUT_DIR/micro-rust.json from criterion,
/// OUT_DIR/micro-cpp.json from Google Benchmark: "tool" and "micro"). A missing file means "not
/// measured"; a file that is there but malformed fails.
/// </summary>
internal sealed class NativeResults
{
    private static readonly (string Runtime, string File)[] Files = [("Rust", "native-rust.json"), ("C++", "native-cpp.json")];

    private readonly List<(string Runtime, int Payload, int Capacity, Stats Stats, string What)> _throughput = [];
    private readonly List<NativeLatency> _latency = [];
    private readonly List<NativeCall> _calls = [];

    /// <summary>Rows of the native programs' own ping-pong through Poc (pinger a, echo b).</summary>
    public List<LatencyRow> LatencyRows { get; } = [];

    /// <summary>Allocation rows of every file read (native programs and Poc.Bench.Micro), in file order.</summary>
    public List<AllocRow> Allocations { get; } = [];

    /// <summary>Poc.Bench.Micro's timings (BenchmarkDotNet).</summary>
    public List<MicroRow> Micro { get; } = [];

    /// <summary>Allocations per async call (rows of every file read; "raw" kept for results.json).</summary>
    public List<JsonObject> CallAllocations { get; } = [];

    /// <summary>Strategy rows of the native programs (Rust: blocking_future, busy_polling, poc).</summary>
    public List<StrategyRow> Strategies { get; } = [];

    /// <summary>Criterion / Google Benchmark timings (micro-rust.json, micro-cpp.json).</summary>
    public List<NativeMicroRow> NativeMicro { get; } = [];

    /// <summary>Per runtime, the tool line of its microbenchmark file; a missing file is listed in <see cref="Missing"/>.</summary>
    public Dictionary<string, string> NativeMicroTools { get; } = [];

    private static readonly (string Runtime, string File)[] MicroFiles = [("Rust", "micro-rust.json"), ("C++", "micro-cpp.json")];

    /// <summary>Poc.Bench.Micro's file when it was read (null: missing).</summary>
    public string? MicroFile { get; private set; }

    /// <summary>Poc.Bench.Micro's "tool" line (job, iterations).</summary>
    public string? MicroTool { get; private set; }

    /// <summary>Which runtimes' files were read (e.g. "Rust: native-rust.json").</summary>
    public List<string> Found { get; } = [];

    /// <summary>Which were missing.</summary>
    public List<string> Missing { get; } = [];

    public static NativeResults Load(string? dir)
    {
        var r = new NativeResults();
        foreach (var (runtime, file) in Files)
            r.LoadFile(dir, file, $"{runtime} ({file})", "native results", o => r.Read(runtime, file, o));
        foreach (var (runtime, file) in MicroFiles)
            r.LoadFile(dir, file, $"{runtime} microbenchmarks ({file})", "microbenchmark results", o => r.ReadNativeMicro(runtime, file, o));
        // Poc.Bench.Micro's file is reported through MicroFile, not Found/Missing.
        string? micro = dir is null ? null : Path.Combine(dir, MicroFileName);
        if (micro is not null && File.Exists(micro))
        {
            Parse(micro, "microbenchmark results", r.ReadMicro);
            r.MicroFile = MicroFileName;
        }
        return r;
    }

    /// <summary>Reads DIR/file with <paramref name="read"/> and lists it in <see cref="Found"/>, or
    /// lists it in <see cref="Missing"/> when it is not there.</summary>
    private void LoadFile(string? dir, string file, string label, string kind, Action<JsonObject> read)
    {
        string? path = dir is null ? null : Path.Combine(dir, file);
        if (path is null || !File.Exists(path))
        {
            Missing.Add(label);
            return;
        }
        Parse(path, kind, read);
        Found.Add(label);
    }

    /// <summary>Parses a JSON object file and hands it to <paramref name="read"/>; a malformed file fails.</summary>
    private static void Parse(string path, string kind, Action<JsonObject> read)
    {
        try
        {
            read(JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException("not a JSON object"));
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or InvalidOperationException
                                      or FormatException or NullReferenceException)
        {
            throw new InvalidDataException($"{path}: malformed {kind}: {e.Message}", e);
        }
    }

    /// <summary>Poc.Bench.Micro's output file (in the --native directory).</summary>
    public const string MicroFileName = "dotnet-micro.json";

    private void ReadMicro(JsonObject o)
    {
        string declared = Str(o, "runtime");
        if (declared != ".NET") throw new InvalidDataException($"\"runtime\" is \"{declared}\", expected \".NET\"");
        MicroTool = o["tool"]?.GetValue<string>();
        foreach (var a in Arr(o, "allocations")) Allocations.Add(ReadAlloc(a, ".NET", MicroFileName));
        foreach (var a in Arr(o, "call_allocations")) CallAllocations.Add(ReadCallAlloc(a, ".NET", MicroFileName));
        foreach (var m in Arr(o, "micro"))
            Micro.Add(new MicroRow(Str(m, "benchmark"), Str(m, "path"), Str(m, "owner"), (int)Num(m, "payload"),
                Num(m, "mean_ns"), OptNum(m, "stddev_ns"), Str(m, "what")));
    }

    private void ReadNativeMicro(string runtime, string file, JsonObject o)
    {
        string declared = Str(o, "runtime");
        if (declared != runtime) throw new InvalidDataException($"\"runtime\" is \"{declared}\", expected \"{runtime}\"");
        NativeMicroTools[runtime] = Str(o, "tool");
        foreach (var m in Arr(o, "micro"))
            NativeMicro.Add(new NativeMicroRow(runtime, Str(m, "benchmark"), Num(m, "mean_ns"), OptNum(m, "stddev_ns"),
                OptNum(m, "median_ns"), Str(m, "what"), file));
    }

    private static JsonObject ReadCallAlloc(JsonObject a, string runtime, string file)
    {
        string declared = Str(a, "runtime");
        if (declared != runtime) throw new InvalidDataException($"call_allocations row of runtime \"{declared}\" in the {runtime} file");
        Str(a, "caller"); Str(a, "callee"); Str(a, "mode"); Str(a, "what");
        OptNum(a, "bytes_per_call"); OptNum(a, "allocs_per_call");
        var raw = (JsonObject)a.DeepClone();
        raw["source"] = file;
        return raw;
    }

    private static StrategyRow ReadStrategy(JsonObject t, string file)
    {
        double med = Num(t, "msgs_per_s");
        Stats? pending = OptNum(t, "pending_share") is { } p
            ? new Stats(p, OptNum(t, "pending_share_min") ?? p, OptNum(t, "pending_share_max") ?? p)
            : null;
        return new StrategyRow(Str(t, "strategy"), Str(t, "label"), Str(t, "pair"), Str(t, "op"), (int)Num(t, "in_flight"),
            new Stats(med, OptNum(t, "min") ?? med, OptNum(t, "max") ?? med), (int)Num(t, "ops"), (int)(OptNum(t, "runs") ?? 1),
            OptNum(t, "cpu_ns_per_op") ?? double.NaN, Str(t, "what"), file) { PendingShare = pending };
    }

    private static AllocRow ReadAlloc(JsonObject a, string runtime, string file)
    {
        string declared = Str(a, "runtime");
        if (declared != runtime) throw new InvalidDataException($"allocations row of runtime \"{declared}\" in the {runtime} file");
        var raw = (JsonObject)a.DeepClone();
        raw["source"] = file;
        return new AllocRow(runtime, Str(a, "path"), (int)(OptNum(a, "payload") ?? 0), a["scope"]?.GetValue<string>() ?? "adapter",
            OptNum(a, "bytes_per_msg"), OptNum(a, "allocs_per_msg"), (long)(OptNum(a, "messages") ?? 0), Str(a, "what"), file, raw);
    }

    private void Read(string runtime, string file, JsonObject o)
    {
        string declared = Str(o, "runtime");
        if (declared != runtime) throw new InvalidDataException($"\"runtime\" is \"{declared}\", expected \"{runtime}\"");
        foreach (var t in Arr(o, "native_throughput"))
        {
            double med = Num(t, "msgs_per_s");
            _throughput.Add((runtime, (int)Num(t, "payload"), t["capacity"] is null ? 0 : (int)Num(t, "capacity"),
                new Stats(med, OptNum(t, "min") ?? med, OptNum(t, "max") ?? med), Str(t, "what")));
        }
        foreach (var l in Arr(o, "native_latency"))
            _latency.Add(new NativeLatency(runtime, Num(l, "rtt_ns_p50"), Num(l, "rtt_ns_p99"), (int)(OptNum(l, "samples") ?? 0),
                (int)(OptNum(l, "payload") ?? 0), Str(l, "what")));
        foreach (var l in Arr(o, "latency"))
        {
            string a = Str(l, "a"), b = Str(l, "b");
            if (a != runtime) throw new InvalidDataException($"latency row with a = \"{a}\" in the {runtime} file");
            double p50 = Num(l, "rtt_ns_p50");
            LatencyRows.Add(new LatencyRow(a, b, p50, Num(l, "rtt_ns_p99"), null, (int)(OptNum(l, "samples") ?? 0), 1,
                (int)(OptNum(l, "payload") ?? 0), file) { What = l["what"]?.GetValue<string>() });
        }
        foreach (var c in Arr(o, "native_calls"))
        {
            // "ready" and "posted" are the ones the call figures use; other modes (e.g.
            // "posted_same_thread") are kept and listed as extra native figures.
            string mode = Str(c, "mode");
            double ns = Num(c, "ns_per_call");
            _calls.Add(new NativeCall(runtime, mode, new Stats(ns, OptNum(c, "min") ?? ns, OptNum(c, "max") ?? ns), Str(c, "what")));
        }
        foreach (var a in Arr(o, "allocations")) Allocations.Add(ReadAlloc(a, runtime, file));
        foreach (var a in Arr(o, "call_allocations")) CallAllocations.Add(ReadCallAlloc(a, runtime, file));
        foreach (var t in Arr(o, "strategies")) Strategies.Add(ReadStrategy(t, file));
    }

    /// <summary>The runtime's native channel throughput for a payload (capacity 1024 preferred).</summary>
    public (Stats Stats, string What)? Throughput(string runtime, int payload)
    {
        var rows = _throughput.Where(t => t.Runtime == runtime && t.Payload == payload)
            .OrderBy(t => t.Capacity == BenchConfig.ThroughputCapacity ? 0 : 1).ToList();
        return rows.Count == 0 ? null : (rows[0].Stats, rows[0].What);
    }

    /// <summary>The runtime's native ping-pong (the latency payload preferred).</summary>
    public NativeLatency? Latency(string runtime) =>
        _latency.Where(l => l.Runtime == runtime).OrderBy(l => l.Payload == BenchConfig.LatencyPayload ? 0 : 1).FirstOrDefault();

    /// <summary>The runtime's native awaited call in a mode.</summary>
    public NativeCall? Call(string runtime, string mode) => _calls.FirstOrDefault(c => c.Runtime == runtime && c.Mode == mode);

    /// <summary>Every native awaited call of the runtime, in the file's order (all modes).</summary>
    public IEnumerable<NativeCall> Calls(string runtime) => _calls.Where(c => c.Runtime == runtime);

    private static IEnumerable<JsonObject> Arr(JsonObject o, string name) =>
        o[name] switch
        {
            null => [],
            JsonArray a => a.Select(x => x as JsonObject ?? throw new InvalidDataException($"\"{name}\" holds a non-object")),
            _ => throw new InvalidDataException($"\"{name}\" is not an array"),
        };

    private static string Str(JsonObject o, string name) =>
        o[name]?.GetValue<string>() ?? throw new InvalidDataException($"missing \"{name}\"");

    private static double Num(JsonObject o, string name) =>
        OptNum(o, name) ?? throw new InvalidDataException($"missing \"{name}\"");

    private static double? OptNum(JsonObject o, string name)
    {
        var n = o[name];
        if (n is null) return null;
        double v = n.GetValue<double>();
        if (!double.IsFinite(v) || v < 0) throw new InvalidDataException($"\"{name}\" = {v}");
        return v;
    }
}

/// <summary>Allocations per message of one import path (a row of a native file or of Poc.Bench.Micro).</summary>
/// <param name="Scope">"adapter": counted across the op only; "total": the whole test loop per message.</param>
/// <param name="AllocsPerMsg">Null for .NET (MemoryDiagnoser gives bytes, not allocation counts).</param>
/// <param name="Raw">The row as read, plus "source" (copied into results.json).</param>
internal sealed record AllocRow(string Runtime, string Path, int Payload, string Scope, double? BytesPerMsg,
    double? AllocsPerMsg, long Messages, string What, string Source, JsonObject Raw);

/// <summary>A criterion (Rust) or Google Benchmark (C++) timing of one single operation.</summary>
internal sealed record NativeMicroRow(string Runtime, string Benchmark, double MeanNs, double? StdDevNs, double? MedianNs,
    string What, string Source);

/// <summary>A BenchmarkDotNet timing of Poc.Bench.Micro: ns per message.</summary>
internal sealed record MicroRow(string Benchmark, string Path, string Owner, int Payload, double MeanNs, double? StdDevNs,
    string What);
