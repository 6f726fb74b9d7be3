// Poc.Bench: measures Poc's cross-runtime throughput, ping-pong latency and async calls through the
// public API of Poc.Bridge, each beside the runtime's plain native equivalent measured in the same
// run, merges the native benchmark programs' results, and writes results.json, report.md and the
// charts' data files (scripts/bench runs it; bench/README.md explains the figures).
// Usage: Poc.Bench --out DIR [--quick] [--native DIR] [--only throughput,latency,calls,strategies]
using Poc.Bridge;

namespace Poc.Bench;

internal static class Program
{
    private static readonly string[] Sections = ["throughput", "latency", "calls", "strategies"];

    private static async Task<int> Main(string[] args)
    {
        string outDir = "bench/out";
        string? nativeDir = null;
        bool quick = false;
        var only = new HashSet<string>(Sections);
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--quick") quick = true;
            else if (args[i] == "--out" && i + 1 < args.Length) outDir = args[++i];
            else if (args[i] == "--native" && i + 1 < args.Length) nativeDir = args[++i];
            else if (args[i] == "--only" && i + 1 < args.Length)
            {
                only = new HashSet<string>(args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries));
                if (only.Except(Sections).FirstOrDefault() is { } bad) { Console.Error.WriteLine($"unknown section {bad}"); return 2; }
            }
            else { Console.Error.WriteLine($"unknown argument {args[i]}"); return 2; }
        }
        Directory.CreateDirectory(outDir);
        var cfg = new BenchConfig(quick);
        var native = NativeResults.Load(nativeDir);
        Progress.Note(native.Found.Count > 0 ? $"native results read: {string.Join(", ", native.Found)}" : "native results: none");
        if (native.Missing.Count > 0) Progress.Note($"native results missing: {string.Join(", ", native.Missing)}");
        Progress.Note(native.MicroFile is { } mf ? $".NET microbenchmarks read: {mf}" : $".NET microbenchmarks: {NativeResults.MicroFileName} missing");

        await using var cpp = new CppRuntime();
        await using var rust = new RustRuntime();
        await using var dotnet = new DotNetRuntime();
        IBridgeRuntime[] rts = [cpp, rust, dotnet];
        var progress = new Progress(
            (only.Contains("throughput") ? Throughput.Figures : 0) +
            (only.Contains("latency") ? Latency.Figures : 0) +
            (only.Contains("calls") ? Calls.Figures : 0) +
            (only.Contains("strategies") ? Strategies.Figures : 0));
        var results = new Results(cfg, native);

        if (only.Contains("throughput"))
        {
            results.Throughput = await Throughput.RunAsync(rts, cfg, native, progress);
            Progress.Note($"throughput done at {progress.Elapsed.TotalSeconds:F0}s");
        }
        if (only.Contains("latency"))
        {
            var (rows, dotnetNative) = await Latency.RunAsync(rts, dotnet, cfg, progress);
            results.MergeLatency(rows, dotnetNative);
            Progress.Note($"latency done at {progress.Elapsed.TotalSeconds:F0}s");
        }
        if (only.Contains("calls"))
        {
            var (rows, csNative) = await Calls.RunAsync(cpp, rust, cfg, progress);
            results.MergeCalls(rows, csNative);
            Progress.Note($"calls done at {progress.Elapsed.TotalSeconds:F0}s");
        }
        if (only.Contains("strategies"))
        {
            results.MergeStrategies(await Strategies.RunAsync(cpp, rust, cfg, progress));
            Progress.Note($"strategies done at {progress.Elapsed.TotalSeconds:F0}s");
        }
        results.Sections = only;
        Report.WriteAll(outDir, results);
        Progress.Note($"wrote {Path.Combine(outDir, "results.json")} and report.md in {progress.Elapsed.TotalSeconds:F0}s");
        return 0;
    }
}
