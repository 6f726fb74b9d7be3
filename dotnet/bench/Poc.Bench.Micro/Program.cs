// Poc.Bench.Micro: BenchmarkDotNet microbenchmarks, with MemoryDiagnoser, of the .NET import path
// (ImportBenchmarks.cs: one message per operation) and of the .NET import of an async call
// (CallBenchmarks.cs: one call per operation). Runs in process (no generated project to build) with a short job, and
// writes OUT/dotnet-micro.json: `allocations` and `call_allocations` arrays in the schema of the
// native programs' rows and a `micro` array of timings, which Poc.Bench merges into results.json and report.md
// (bench/README.md). BenchmarkDotNet's own log and reports go to OUT/micro-artifacts/.
// Usage: Poc.Bench.Micro --out DIR [--quick]
using System.Text.Json;
using System.Text.Json.Nodes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace Poc.Bench.Micro;

internal static class Program
{
    private static int Main(string[] args)
    {
        string outDir = "bench/out";
        bool quick = false;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--quick") quick = true;
            else if (args[i] == "--out" && i + 1 < args.Length) outDir = args[++i];
            else { Console.Error.WriteLine($"Poc.Bench.Micro: unknown argument {args[i]} (usage: --out DIR [--quick])"); return 2; }
        }
        Directory.CreateDirectory(outDir);
        string outFile = Path.Combine(outDir, "dotnet-micro.json");
        File.Delete(outFile); // never leave a stale file behind a failed run

        int warmups = quick ? 2 : 5, iterations = quick ? 3 : 10;
        int iterationMs = quick ? 100 : 250;
        var job = Job.Default
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithLaunchCount(1)
            .WithWarmupCount(warmups)
            .WithIterationCount(iterations)
            .WithIterationTime(TimeInterval.FromMilliseconds(iterationMs))
            .WithId(quick ? "quick" : "full");
        var config = ManualConfig.CreateEmpty()
            .AddJob(job)
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddColumnProvider(DefaultColumnProviders.Instance)
            .AddLogger(NullLogger.Instance)
            .WithArtifactsPath(Path.GetFullPath(Path.Combine(outDir, "micro-artifacts")));

        var t0 = DateTime.UtcNow;
        Console.WriteLine($"[micro] BenchmarkDotNet, {(quick ? "quick" : "full")} job: in process, {warmups} warm-up and {iterations} measured iterations of ~{iterationMs} ms per case, MemoryDiagnoser");
        Summary summary = BenchmarkRunner.Run<ImportBenchmarks>(config);
        Summary callSummary = BenchmarkRunner.Run<CallBenchmarks>(config);

        var allocations = new JsonArray();
        var callAllocations = new JsonArray();
        var micro = new JsonArray();
        bool failed = summary.HasCriticalValidationErrors || summary.Reports.Length == 0
            || callSummary.HasCriticalValidationErrors || callSummary.Reports.Length == 0;
        foreach (var report in summary.Reports.OrderBy(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name)
                     .ThenBy(r => (string)r.BenchmarkCase.Parameters["Owner"]).ThenBy(r => (int)r.BenchmarkCase.Parameters["Payload"]))
        {
            var bc = report.BenchmarkCase;
            string method = bc.Descriptor.WorkloadMethod.Name;
            string owner = (string)bc.Parameters["Owner"];
            int payload = (int)bc.Parameters["Payload"];
            var stats = report.ResultStatistics;
            if (!report.Success || stats is null)
            {
                Console.Error.WriteLine($"[micro] {method} owner {owner} payload {payload}: FAILED (see {summary.LogFilePath})");
                failed = true;
                continue;
            }
            var gc = report.GcStats;
            long ops = gc.TotalOperations;
            long? perOp = gc.GetBytesAllocatedPerOperation(bc);
            double exact = ops > 0 && gc.GetTotalAllocatedBytes(true) is { } total ? total / (double)ops : double.NaN;
            double gen0 = ops > 0 ? gc.Gen0Collections * 1000.0 / ops : double.NaN;
            string path = method == "Fast"
                ? $"write+read fast ({owner} channel)"
                : $"write+read, read pending ({owner} channel)";
            string opWhat = method == "Fast"
                ? $"ChannelWriter<Message>.WriteAsync then ChannelReader<Message>.ReadAsync (SenderPort.ToWriter / ReceiverPort.ToReader) on a channel owned by {owner}, capacity 1, with room: both complete in the port call"
                : $"ChannelReader<Message>.ReadAsync issued on the empty channel owned by {owner} (capacity 1; it goes PENDING), then WriteAsync, whose message completes the read through the exporter's callback; the read's continuation runs on the thread pool";
            string exporterNote = owner == ".NET"
                ? "the exporter is .NET too, in the same process: its allocations are included"
                : $"the {owner} exporter allocates natively and is not counted";
            string payloadNote = payload == 0
                ? "payload 0: the adapter's own allocation"
                : $"payload {payload}: includes the received payload's copy into a new byte[] ({payload} bytes + array header) per message, by design";
            Console.WriteLine($"[micro {(DateTime.UtcNow - t0).TotalSeconds:F0}s] .NET {path} payload {payload}: {stats.Mean:F1} ns/msg, {perOp?.ToString() ?? "?"} B/msg allocated ({exact:F3} unrounded), gen0 {gen0:F3} per 1000 msgs");
            allocations.Add(new JsonObject
            {
                ["runtime"] = ".NET",
                ["path"] = path,
                ["payload"] = payload,
                ["scope"] = "adapter",
                ["bytes_per_msg"] = perOp,
                ["bytes_per_msg_exact"] = double.IsFinite(exact) ? Math.Round(exact, 3) : null,
                ["allocs_per_msg"] = null,
                ["gen0_per_1000_msgs"] = double.IsFinite(gen0) ? Math.Round(gen0, 3) : null,
                ["messages"] = ops,
                ["what"] = $"{opWhat}; one operation = one message; BenchmarkDotNet MemoryDiagnoser (GC.GetTotalAllocatedBytes, all threads) over the measured iterations, divided by the operations (the 'Allocated' column; bytes_per_msg_exact is the unrounded quotient); allocs_per_msg is null: MemoryDiagnoser gives bytes and GC counts, not allocation counts; {exporterNote}; {payloadNote}; the written message and its payload array are made once; the loop is a pooled async method ({ImportBenchmarks.Ops} messages per invocation)",
            });
            micro.Add(new JsonObject
            {
                ["runtime"] = ".NET",
                ["benchmark"] = method,
                ["path"] = path,
                ["owner"] = owner,
                ["payload"] = payload,
                ["mean_ns"] = Math.Round(stats.Mean, 2),
                ["stddev_ns"] = Math.Round(stats.StandardDeviation, 2),
                ["min_ns"] = Math.Round(stats.Min, 2),
                ["max_ns"] = Math.Round(stats.Max, 2),
                ["iterations"] = stats.N,
                ["messages"] = ops,
                ["what"] = $"{opWhat}; ns per message (mean over BenchmarkDotNet's measured iterations, overhead subtracted)",
            });
        }
        foreach (var report in callSummary.Reports.OrderBy(r => (string)r.BenchmarkCase.Parameters["Callee"])
                     .ThenBy(r => (string)r.BenchmarkCase.Parameters["Mode"]))
        {
            var bc = report.BenchmarkCase;
            string callee = (string)bc.Parameters["Callee"];
            string mode = (string)bc.Parameters["Mode"];
            var stats = report.ResultStatistics;
            if (!report.Success || stats is null)
            {
                Console.Error.WriteLine($"[micro] Call callee {callee} {mode}: FAILED (see {callSummary.LogFilePath})");
                failed = true;
                continue;
            }
            var gc = report.GcStats;
            long ops = gc.TotalOperations;
            long? perOp = gc.GetBytesAllocatedPerOperation(bc);
            double exact = ops > 0 && gc.GetTotalAllocatedBytes(true) is { } total ? total / (double)ops : double.NaN;
            string what = $"ImportedFunction.SquareAsync(x) awaited on the {callee} \"square\" in {mode} mode ({(callee == "Rust" ? "RustCalls" : "CppCalls")}.SquareFunction, one runtime thread; " +
                          (mode == "ready" ? "the first poll answers, no wake" : "the callee's runtime thread finishes it and wakes the caller; the continuation runs on the thread pool") +
                          $"); one operation = one call; BenchmarkDotNet MemoryDiagnoser (all threads) ÷ operations; the {callee} side allocates natively and is not counted; the loop is a pooled async method ({CallBenchmarks.Ops} calls per invocation)";
            Console.WriteLine($"[micro {(DateTime.UtcNow - t0).TotalSeconds:F0}s] .NET call -> {callee} {mode}: {stats.Mean:F1} ns/call, {perOp?.ToString() ?? "?"} B/call allocated ({exact:F3} unrounded)");
            callAllocations.Add(new JsonObject
            {
                ["runtime"] = ".NET",
                ["caller"] = "C#",
                ["callee"] = callee,
                ["mode"] = mode,
                ["bytes_per_call"] = perOp,
                ["bytes_per_call_exact"] = double.IsFinite(exact) ? Math.Round(exact, 3) : null,
                ["allocs_per_call"] = null,
                ["calls"] = ops,
                ["what"] = what,
            });
            micro.Add(new JsonObject
            {
                ["runtime"] = ".NET",
                ["benchmark"] = "Call",
                ["path"] = $"call {mode} ({callee} callee)",
                ["owner"] = callee,
                ["payload"] = 0,
                ["mean_ns"] = Math.Round(stats.Mean, 2),
                ["stddev_ns"] = Math.Round(stats.StandardDeviation, 2),
                ["min_ns"] = Math.Round(stats.Min, 2),
                ["max_ns"] = Math.Round(stats.Max, 2),
                ["iterations"] = stats.N,
                ["messages"] = ops,
                ["what"] = $"{what}; ns per call (mean over BenchmarkDotNet's measured iterations, overhead subtracted)",
            });
        }
        if (failed)
        {
            Console.Error.WriteLine($"[micro] FAILED: some benchmarks have no result (log: {summary.LogFilePath})");
            return 1;
        }
        var root = new JsonObject
        {
            ["runtime"] = ".NET",
            ["mode"] = quick ? "quick" : "full",
            ["tool"] = $"BenchmarkDotNet 0.14.0, InProcessEmitToolchain, {warmups} warm-up + {iterations} measured iterations of ~{iterationMs} ms, MemoryDiagnoser",
            ["allocations"] = allocations,
            ["call_allocations"] = callAllocations,
            ["micro"] = micro,
        };
        File.WriteAllText(outFile, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        Console.WriteLine($"[micro] wrote {outFile} in {(DateTime.UtcNow - t0).TotalSeconds:F0}s (BenchmarkDotNet log: {summary.LogFilePath})");
        return 0;
    }
}
