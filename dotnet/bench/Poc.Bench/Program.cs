// Poc.Bench: measures cross-runtime throughput through the public API of Poc.Bridge and writes
// results.json and report.md (scripts/bench runs it; bench/README.md explains the figures).
// Usage: Poc.Bench --out DIR [--quick]
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Poc.Bridge;

namespace Poc.Bench;

internal static class Program
{
    private const int Capacity = 1024;
    private static readonly int[] Payloads = [0, 64, 4096];
    private static readonly string[] Names = ["C++", "Rust", ".NET"];

    private static async Task<int> Main(string[] args)
    {
        string outDir = "bench/out";
        bool quick = false;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--quick") quick = true;
            else if (args[i] == "--out" && i + 1 < args.Length) outDir = args[++i];
            else { Console.Error.WriteLine($"unknown argument {args[i]}"); return 2; }
        }
        Directory.CreateDirectory(outDir);
        ulong messages = quick ? 20_000UL : 200_000UL;
        int runs = quick ? 3 : 7;

        var rows = new List<ThroughputRow>();
        await using var cpp = new CppRuntime();
        await using var rust = new RustRuntime();
        await using var dotnet = new DotNetRuntime();
        IBridgeRuntime[] rts = [cpp, rust, dotnet];
        int total = Payloads.Length * (27 + 1), done = 0;
        var sw = Stopwatch.StartNew();
        foreach (int payload in Payloads)
        {
            var nativeDotNet = await Measure(() => NativeDotNetOnce(messages, payload), runs);
            Progress(ref done, total, sw, $".NET native Channel payload {payload}: {nativeDotNet.Median:F0} msg/s");
            var sameRuntime = new Dictionary<string, Stats>();
            var combos = new List<(int P, int O, int C, Stats S)>();
            for (int p = 0; p < 3; p++)
            for (int o = 0; o < 3; o++)
            for (int c = 0; c < 3; c++)
            {
                var (rp, ro, rc) = (rts[p], rts[o], rts[c]);
                var s = await Measure(() => PocOnce(rp, ro, rc, messages, payload), runs);
                combos.Add((p, o, c, s));
                if (p == o && o == c) sameRuntime[Names[o]] = s;
                Progress(ref done, total, sw, $"{Names[p]} -> {Names[o]} channel -> {Names[c]} payload {payload}: {s.Median:F0} msg/s");
            }
            foreach (var (p, o, c, s) in combos)
            {
                string owner = Names[o];
                bool real = owner == ".NET";
                var native = real ? nativeDotNet : sameRuntime[owner];
                rows.Add(new ThroughputRow(Names[p], owner, Names[c], payload, Capacity, s, native,
                    real ? "System.Threading.Channels bounded, producer/consumer Tasks"
                         : $"proxy: Poc same-runtime ({owner} agents on {owner} channel)"));
            }
        }
        Console.WriteLine($"[bench] throughput done in {sw.Elapsed.TotalSeconds:F0}s");
        WriteJson(Path.Combine(outDir, "results.json"), rows, messages, runs, quick);
        WriteReport(Path.Combine(outDir, "report.md"), rows, messages, runs, quick);
        WriteDat(Path.Combine(outDir, "throughput.dat"), rows);
        return 0;
    }

    private static void Progress(ref int done, int total, Stopwatch sw, string what)
    {
        done++;
        Console.WriteLine($"[bench {done}/{total} {sw.Elapsed.TotalSeconds:F0}s] {what}");
    }

    private sealed record Stats(double Median, double Min, double Max);

    private sealed record ThroughputRow(string Producer, string Owner, string Consumer, int Payload, int Capacity,
        Stats Poc, Stats Native, string NativeKind)
    {
        public double Ratio => Poc.Median / Native.Median;
    }

    /// <summary>One warm-up run (discarded), then <paramref name="runs"/> timed runs; median, min, max.</summary>
    private static async Task<Stats> Measure(Func<Task<double>> once, int runs)
    {
        await once();
        var xs = new List<double>();
        for (int i = 0; i < runs; i++) xs.Add(await once());
        xs.Sort();
        double med = xs.Count % 2 == 1 ? xs[xs.Count / 2] : (xs[xs.Count / 2 - 1] + xs[xs.Count / 2]) / 2;
        return new Stats(med, xs[0], xs[^1]);
    }

    private static async Task<double> PocOnce(IBridgeRuntime p, IBridgeRuntime o, IBridgeRuntime c, ulong n, int payload)
    {
        var (sender, receiver) = o.CreateChannel(Capacity);
        var sw = Stopwatch.StartNew();
        var consumer = c.RunConsumerAsync(receiver);
        var producer = p.RunProducerAsync(sender, 1, n, payload);
        var pr = await producer;
        var cr = await consumer;
        double secs = sw.Elapsed.TotalSeconds;
        if (pr.Status != Status.Ok || cr.Messages != n || cr.OrderErrors != 0)
            throw new InvalidOperationException(
                $"{p.Name}->{o.Name}->{c.Name}: producer {pr}, consumer {cr}, expected {n} messages");
        return n / secs;
    }

    private static async Task<double> NativeDotNetOnce(ulong n, int payload)
    {
        var ch = Channel.CreateBounded<Message>(new BoundedChannelOptions(Capacity)
        { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
        var sw = Stopwatch.StartNew();
        var consumer = Task.Run(async () =>
        {
            ulong count = 0, sum = 0;
            await foreach (var m in ch.Reader.ReadAllAsync()) { count++; sum += m.Checksum(); }
            return (count, sum);
        });
        var producer = Task.Run(async () =>
        {
            for (ulong i = 0; i < n; i++)
            {
                ulong id = MessageChecksum.MakeId(1, i);
                byte[] buf = payload == 0 ? [] : new byte[payload];
                if (payload > 0) MessageChecksum.FillPattern(id, buf);
                await ch.Writer.WriteAsync(new Message(id, buf));
            }
            ch.Writer.Complete();
        });
        await producer;
        var (got, _) = await consumer;
        double secs = sw.Elapsed.TotalSeconds;
        if (got != n) throw new InvalidOperationException($"native .NET: {got} of {n}");
        return n / secs;
    }

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
            ["kernel"] = RuntimeInformation.OSDescription,
            ["arch"] = RuntimeInformation.OSArchitecture.ToString(),
            ["cxx"] = Sh("g++", "--version"),
            ["rustc"] = Sh("rustc", "--version"),
            ["dotnet"] = RuntimeInformation.FrameworkDescription,
            ["date_utc"] = DateTime.UtcNow.ToString("u", CultureInfo.InvariantCulture),
        };
    }

    private static void WriteJson(string path, List<ThroughputRow> rows, ulong n, int runs, bool quick)
    {
        var tp = new JsonArray();
        foreach (var r in rows)
            tp.Add(new JsonObject
            {
                ["producer"] = r.Producer, ["owner"] = r.Owner, ["consumer"] = r.Consumer,
                ["payload"] = r.Payload, ["capacity"] = r.Capacity,
                ["msgs_per_s"] = Math.Round(r.Poc.Median), ["msgs_per_s_min"] = Math.Round(r.Poc.Min),
                ["msgs_per_s_max"] = Math.Round(r.Poc.Max),
                ["native_msgs_per_s"] = Math.Round(r.Native.Median), ["native_kind"] = r.NativeKind,
                ["ratio"] = Math.Round(r.Ratio, 3),
            });
        var root = new JsonObject
        {
            ["mode"] = quick ? "quick" : "full",
            ["method"] = new JsonObject { ["messages_per_run"] = n, ["warmup_runs"] = 1, ["runs"] = runs, ["statistic"] = "median (min/max spread kept)" },
            ["throughput"] = tp,
            ["latency"] = new JsonArray(), ["calls"] = new JsonArray(), ["allocations"] = new JsonArray(),
            ["strategies"] = new JsonArray(),
            ["not_measured"] = "latency, calls, allocations, strategies: not measured in this increment",
            ["machine"] = Machine(),
        };
        File.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static void WriteDat(string path, List<ThroughputRow> rows)
    {
        using var w = new StreamWriter(path);
        w.WriteLine("# combination payload0_ratio payload64_ratio payload4096_ratio");
        foreach (var g in rows.GroupBy(r => $"{Short(r.Producer)}>{Short(r.Owner)}>{Short(r.Consumer)}"))
        {
            w.Write(g.Key);
            foreach (int p in Payloads)
                w.Write(" " + g.First(r => r.Payload == p).Ratio.ToString("F3", CultureInfo.InvariantCulture));
            w.WriteLine();
        }
    }

    private static string Short(string n) => n == "C++" ? "cpp" : n == "Rust" ? "rust" : "net";

    private static void WriteReport(string path, List<ThroughputRow> rows, ulong n, int runs, bool quick)
    {
        var ic = CultureInfo.InvariantCulture;
        using var w = new StreamWriter(path);
        w.WriteLine($"# Poc benchmark report ({(quick ? "quick" : "full")} run, {DateTime.UtcNow.ToString("u", ic)})");
        w.WriteLine();
        var m = Machine();
        w.WriteLine($"Machine: {m["cores"]} cores, {m["os"]}, {m["cxx"]}, {m["rustc"]}, {m["dotnet"]}.");
        w.WriteLine();
        w.WriteLine("## Targets");
        w.WriteLine();
        w.WriteLine("| target | status | figures |");
        w.WriteLine("|---|---|---|");
        var cross = rows.Where(r => !(r.Producer == r.Owner && r.Owner == r.Consumer)).ToList();
        var realRows = cross.Where(r => r.Owner == ".NET").ToList();
        int met = realRows.Count(r => r.Ratio >= 0.8);
        w.WriteLine($"| throughput ≥ 0.8 × owner's native (owner .NET, real native baseline) | {(met == realRows.Count ? "met" : "not met")} | {met} of {realRows.Count} combinations; worst ratio {realRows.Min(r => r.Ratio).ToString("F2", ic)} |");
        var proxyRows = cross.Where(r => r.Owner != ".NET").ToList();
        int pm = proxyRows.Count(r => r.Ratio >= 0.8);
        w.WriteLine($"| throughput ≥ 0.8 × owner's native (owner C++/Rust) | not assessed: proxy baseline only | vs Poc same-runtime proxy: {pm} of {proxyRows.Count} ≥ 0.8; worst {proxyRows.Min(r => r.Ratio).ToString("F2", ic)} |");
        w.WriteLine("| RTT ≤ slower native RTT | not measured | — |");
        w.WriteLine("| async calls vs native | not measured | — |");
        w.WriteLine("| allocations per message | not measured | — |");
        w.WriteLine();
        w.WriteLine("## Throughput (capacity 1024)");
        w.WriteLine();
        w.WriteLine("Producer agent in P → channel owned by O → consumer agent in C. msgs/s is the median; spread is min–max of the timed runs.");
        w.WriteLine("**Baselines:** for owner .NET the baseline is a plain System.Threading.Channels bounded channel (capacity 1024) with a producer Task and a consumer Task. ");
        w.WriteLine("For owners C++ and Rust there is no plain tokio mpsc / Asio concurrent_channel benchmark exported yet: the baseline is a **proxy** — the Poc same-runtime figure (e.g. C++ agents on a C++ channel), which still crosses the bridge's ports. Those ratios are *not* ratios to native.");
        w.WriteLine();
        w.WriteLine("![throughput ratio](throughput_ratio.svg)");
        foreach (int p in Payloads)
        {
            w.WriteLine();
            w.WriteLine($"### Payload {p} bytes");
            w.WriteLine();
            w.WriteLine("| producer | owner | consumer | msgs/s (median) | spread (min–max) | baseline msgs/s | baseline | ratio |");
            w.WriteLine("|---|---|---|---:|---|---:|---|---:|");
            foreach (var r in rows.Where(r => r.Payload == p))
                w.WriteLine($"| {r.Producer} | {r.Owner} | {r.Consumer} | {r.Poc.Median.ToString("N0", ic)} | {r.Poc.Min.ToString("N0", ic)}–{r.Poc.Max.ToString("N0", ic)} | {r.Native.Median.ToString("N0", ic)} | {(r.Owner == ".NET" ? "native" : "proxy")} | {r.Ratio.ToString("F2", ic)} |");
        }
        w.WriteLine();
        w.WriteLine("## Not measured in this run");
        w.WriteLine();
        w.WriteLine("latency (ping-pong RTT), async calls, allocations, strategies: the arrays in results.json are empty.");
        w.WriteLine();
        w.WriteLine("## How measured");
        w.WriteLine();
        w.WriteLine($"Each figure: 1 warm-up run (discarded), then {runs} timed runs of {n} messages each; median reported, min–max kept as spread. Every run checks that the consumer got all messages in order. All figures come from the same process and run, so ratios are same-run. The machine is shared (2 cores), so expect noise; compare ratios rather than absolute figures.");
    }
}
