using System.Diagnostics;

namespace Poc.Scenarios;

/// <summary>Parses the command line, runs the chosen scenarios, prints the summary.</summary>
internal static class Runner
{
    /// <summary>Every scenario this runner hosts, in the order "run them all" uses.</summary>
    private static readonly Scenario[] s_scenarios =
    [
        new MayonTimerScenario(),
        new MayonSenderScenario(),
        new RingScenario(),
        new FanInScenario(),
        new FanOutScenario(),
        new BackpressureScenario(),
        new CancelScenario(),
        new ShutdownScenario(),
        new AsyncCallsScenario(),
    ];

    /// <summary>The runtime that owns the process's main, printed first: ".NET" when the runner
    /// is the program (Program.cs), set by <see cref="HostEntry"/> for the C++ and Rust hosts.</summary>
    public static string HostName { get; set; } = ".NET";

    public static async Task<int> MainAsync(string[] args)
    {
        Console.WriteLine($"host: {HostName}");
        ScenarioOptions options;
        List<Scenario> chosen;
        try
        {
            (options, chosen, bool list) = Parse(args);
            if (list)
            {
                PrintList(Console.Out);
                return 0;
            }
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"Poc.Scenarios: {e.Message}");
            Console.Error.WriteLine("usage: Poc.Scenarios [SCENARIO...] [--messages N] [--payload B] [--capacity C] [--verbose] | --list");
            return 2;
        }

        var results = new List<(Scenario Scenario, ScenarioContext Context, TimeSpan Time)>();
        foreach (Scenario scenario in chosen)
        {
            Console.WriteLine($"==> {scenario.Name}: {scenario.Description}");
            var context = new ScenarioContext(options, Console.Out);
            var clock = Stopwatch.StartNew();
            try
            {
                await scenario.RunAsync(context);
            }
            catch (Exception e)
            {
                context.Fail($"the scenario threw {e.GetType().Name}: {e.Message}");
                if (options.Verbose) Console.WriteLine(e);
            }
            clock.Stop();
            results.Add((scenario, context, clock.Elapsed));
            if (options.ResultFile is { } file)
            {
                File.AppendAllText(file, string.Join('\t', scenario.Name, scenario.Runtimes, context.Work,
                    clock.Elapsed.TotalSeconds.ToString("F2", System.Globalization.CultureInfo.InvariantCulture),
                    context.Failures == 0 ? "PASS" : "FAIL") + "\n");
            }
            Console.WriteLine(context.Failures == 0
                ? $"    {scenario.Name}: all {context.Checks} checks held ({clock.Elapsed.TotalSeconds:F2} s)"
                : $"    {scenario.Name}: {context.Failures} of {context.Checks} checks FAILED");
            Console.WriteLine();
        }

        if (results.Count > 1)
        {
            Console.WriteLine($"{"SCENARIO",-14} {"RUNTIMES",-14} {"WORK",12} {"TIME",9}  RESULT");
            foreach (var (scenario, context, time) in results)
            {
                string result = context.Failures == 0 ? "PASS" : $"FAIL ({context.Failures} checks)";
                Console.WriteLine($"{scenario.Name,-14} {scenario.Runtimes,-14} {context.Work,12} {time.TotalSeconds,8:F2}s  {result}");
            }
        }
        return results.All(r => r.Context.Failures == 0) ? 0 : 1;
    }

    private static void PrintList(TextWriter output)
    {
        output.WriteLine($"{"SCENARIO",-14} {"RUNTIMES",-14} DESCRIPTION");
        foreach (Scenario s in s_scenarios) output.WriteLine($"{s.Name,-14} {s.Runtimes,-14} {s.Description}");
    }

    private static (ScenarioOptions Options, List<Scenario> Chosen, bool List) Parse(string[] args)
    {
        var options = new ScenarioOptions();
        var chosen = new List<Scenario>();
        bool list = false;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            switch (a)
            {
                case "--list" or "-l":
                    list = true;
                    break;
                case "--verbose" or "-v":
                    options = options with { Verbose = true };
                    break;
                case "--messages":
                    options = options with { Messages = Number(args, ref i, min: 1, max: 100_000_000) };
                    break;
                case "--payload":
                    options = options with { Payload = (int)Number(args, ref i, min: 0, max: 16 * 1024 * 1024) };
                    break;
                case "--capacity":
                    options = options with { Capacity = (int)Number(args, ref i, min: 1, max: 1 << 20) };
                    break;
                case "--result-file":
                    // For scripts/run: one line per scenario, name TAB runtimes TAB work TAB seconds TAB result.
                    if (i + 1 >= args.Length) throw new UsageException("--result-file needs a path");
                    options = options with { ResultFile = args[++i] };
                    break;
                default:
                    if (a.StartsWith('-')) throw new UsageException($"unknown option '{a}'");
                    Scenario? s = s_scenarios.FirstOrDefault(x => x.Name == a)
                        ?? throw new UsageException($"unknown scenario '{a}' (--list shows them)");
                    if (!chosen.Contains(s)) chosen.Add(s);
                    break;
            }
        }
        if (chosen.Count == 0) chosen.AddRange(s_scenarios);
        return (options, chosen, list);
    }

    private static long Number(string[] args, ref int i, long min, long max)
    {
        string name = args[i];
        if (i + 1 >= args.Length) throw new UsageException($"{name} needs a value");
        string text = args[++i];
        if (!long.TryParse(text, out long value) || value < min || value > max)
            throw new UsageException($"{name} needs a whole number from {min} to {max}, got '{text}'");
        return value;
    }

    private sealed class UsageException(string message) : Exception(message);
}
