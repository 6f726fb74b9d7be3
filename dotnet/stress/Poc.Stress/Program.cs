// Poc.Stress: the .NET driver of scripts/stress (dotnet/stress/README.md).
//
//   Poc.Stress matrix        [--messages N] [--capacities 1,16,1024] [--result-file F]
//                                                               27 producer x owner x consumer combinations
//   Poc.Stress shutdown-load [--messages N] [--result-file F]
//                                                               each owner shut down mid-stream under load
//   Poc.Stress restart       [--rounds R] [--messages M] [--result-file F]
//                                                               fresh runtimes R times in one process
//                                                               (M: fan-in messages per producer)
//
// Each phase prints progress lines and one result row ("RESULT phase ..."), appends the row to
// --result-file as tab-separated fields (phase, work, lost, duplicated, reordered, callbacks/ops,
// peak RSS KiB, seconds, PASS|FAIL), and exits 1 when an invariant broke, 2 on bad usage.
using System.Diagnostics;
using System.Globalization;

namespace Poc.Stress;

internal static class Program
{
    private const string Usage =
        "usage: Poc.Stress matrix|shutdown-load|restart [--messages N] [--rounds R] [--capacities C,C,C] [--result-file F]";

    private static async Task<int> Main(string[] args)
    {
        Options options;
        try
        {
            options = Options.Parse(args);
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"Poc.Stress: {e.Message}");
            Console.Error.WriteLine(Usage);
            return 2;
        }

        var phase = new PhaseContext(options.Phase);
        var clock = Stopwatch.StartNew();
        Console.WriteLine($"==> stress {options.Phase} (pid {Environment.ProcessId}, {Environment.ProcessorCount} cores)");
        try
        {
            switch (options.Phase)
            {
                case "matrix":
                    await MatrixPhase.RunAsync(phase, options.Messages ?? 100_000, options.Capacities ?? [1, 16, 1024]);
                    break;
                case "shutdown-load":
                    await ShutdownLoadPhase.RunAsync(phase, options.Messages ?? 200_000);
                    break;
                case "restart":
                    await RestartPhase.RunAsync(phase, options.Rounds ?? 20, options.Messages ?? 2_000);
                    break;
            }
        }
        catch (Exception e)
        {
            phase.Fail($"the phase threw {e.GetType().Name}: {e.Message}");
            Console.WriteLine(e);
        }
        clock.Stop();
        long peakKiB = Memory.PeakRssKiB();
        string result = phase.Failures == 0 ? "PASS" : "FAIL";
        string seconds = clock.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture);
        Console.WriteLine($"    peak RSS (VmHWM) {peakKiB / 1024.0:F1} MiB");
        Console.WriteLine(phase.Failures == 0
            ? $"    {options.Phase}: all {phase.Checks} checks held ({seconds} s)"
            : $"    {options.Phase}: {phase.Failures} of {phase.Checks} checks FAILED");
        string[] fields =
        [
            options.Phase, phase.Work, phase.Lost.ToString(CultureInfo.InvariantCulture),
            phase.Duplicated.ToString(CultureInfo.InvariantCulture), phase.Reordered.ToString(CultureInfo.InvariantCulture),
            phase.CallbacksVsOps, peakKiB.ToString(CultureInfo.InvariantCulture), seconds, result,
        ];
        Console.WriteLine($"RESULT {string.Join(" | ", fields)}");
        if (options.ResultFile is { } file) File.AppendAllText(file, string.Join('\t', fields) + "\n");
        return phase.Failures == 0 ? 0 : 1;
    }
}

/// <summary>The command line.</summary>
internal sealed record Options(string Phase, long? Messages, int? Rounds, string? ResultFile, int[]? Capacities)
{
    private static readonly string[] s_phases = ["matrix", "shutdown-load", "restart"];

    public static Options Parse(string[] args)
    {
        if (args.Length == 0) throw new UsageException("a phase is needed");
        string phase = args[0];
        if (!s_phases.Contains(phase)) throw new UsageException($"unknown phase '{phase}'");
        long? messages = null;
        int? rounds = null;
        string? resultFile = null;
        int[]? capacities = null;
        for (int i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--messages":
                    messages = Number(args, ref i, 2, 1_000_000_000);
                    break;
                case "--rounds":
                    rounds = (int)Number(args, ref i, 1, 100_000);
                    break;
                case "--result-file":
                    if (i + 1 >= args.Length) throw new UsageException("--result-file needs a path");
                    resultFile = args[++i];
                    break;
                case "--capacities":
                    if (i + 1 >= args.Length) throw new UsageException("--capacities needs a list, e.g. 1,16,1024");
                    capacities = args[++i].Split(',').Select(t =>
                        int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out int c) && c >= 1 && c <= 1 << 20
                            ? c
                            : throw new UsageException($"--capacities: '{t}' is not a capacity from 1 to {1 << 20}")).ToArray();
                    break;
                default:
                    throw new UsageException($"unknown argument '{args[i]}'");
            }
        }
        return new Options(phase, messages, rounds, resultFile, capacities);
    }

    private static long Number(string[] args, ref int i, long min, long max)
    {
        string name = args[i];
        if (i + 1 >= args.Length) throw new UsageException($"{name} needs a value");
        string text = args[++i];
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long value) || value < min || value > max)
            throw new UsageException($"{name} needs a whole number from {min} to {max}, got '{text}'");
        return value;
    }
}

internal sealed class UsageException(string message) : Exception(message);

/// <summary>Checks, failures and the figures of one phase's result row.</summary>
internal sealed class PhaseContext(string name)
{
    public string Name { get; } = name;
    public int Checks { get; private set; }
    public int Failures { get; private set; }
    public string Work { get; set; } = "-";
    public long Lost { get; set; }
    public long Duplicated { get; set; }
    public long Reordered { get; set; }
    public string CallbacksVsOps { get; set; } = "-";

    /// <summary>Counts a check; prints it when it failed. Returns <paramref name="ok"/>.</summary>
    public bool Check(bool ok, string what)
    {
        Checks++;
        if (!ok) Fail(what);
        return ok;
    }

    public void Fail(string what)
    {
        Failures++;
        Console.WriteLine($"  FAIL {what}");
    }

    public static void Line(string text) => Console.WriteLine(text);
}

/// <summary>Process memory figures (Linux /proc/self/status).</summary>
internal static class Memory
{
    /// <summary>Peak resident set size (VmHWM) in KiB; 0 where /proc is not available.</summary>
    public static long PeakRssKiB() => Field("VmHWM:");

    /// <summary>Current resident set size (VmRSS) in KiB.</summary>
    public static long RssKiB() => Field("VmRSS:");

    private static long Field(string name)
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (!line.StartsWith(name, StringComparison.Ordinal)) continue;
                string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return long.Parse(parts[1], CultureInfo.InvariantCulture);
            }
        }
        catch (IOException)
        {
        }
        return 0;
    }
}

/// <summary>Bounded waits: nothing in a phase waits forever.</summary>
internal static class Waits
{
    /// <summary>How long one wait for a quiet condition or a single await may take.</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>The task's result, or null (and a failure) when it did not end within <paramref name="bound"/>.</summary>
    public static async Task<T?> WithinAsync<T>(Task<T> task, TimeSpan bound, PhaseContext phase, string what)
        where T : struct
    {
        try
        {
            return await task.WaitAsync(bound);
        }
        catch (TimeoutException)
        {
            phase.Fail($"{what}: no result within {bound.TotalSeconds:F0} s (hang)");
            return null;
        }
        catch (Exception e)
        {
            phase.Fail($"{what}: faulted with {e.GetType().Name}: {e.Message}");
            return null;
        }
    }

    /// <summary>True when the task ended within <paramref name="bound"/> (a failure otherwise).</summary>
    public static async Task<bool> EndsWithinAsync(Task task, TimeSpan bound, PhaseContext phase, string what)
    {
        try
        {
            await task.WaitAsync(bound);
            return true;
        }
        catch (TimeoutException)
        {
            phase.Fail($"{what}: did not end within {bound.TotalSeconds:F0} s (hang)");
            return false;
        }
        catch (Exception e)
        {
            phase.Fail($"{what}: faulted with {e.GetType().Name}: {e.Message}");
            return false;
        }
    }

    /// <summary>Polls <paramref name="condition"/> every millisecond until it holds or
    /// <see cref="Bound"/> passed; returns whether it held.</summary>
    public static async Task<bool> UntilAsync(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed >= Bound) return false;
            await Task.Delay(1);
        }
        return true;
    }

    /// <summary>Polls <paramref name="condition"/> every millisecond until it holds; returns false
    /// when <paramref name="progress"/> did not change for <see cref="Bound"/> (a stall).</summary>
    public static async Task<bool> UntilProgressAsync(Func<bool> condition, Func<long> progress)
    {
        var clock = Stopwatch.StartNew();
        long seen = progress();
        while (!condition())
        {
            long now = progress();
            if (now != seen)
            {
                seen = now;
                clock.Restart();
            }
            else if (clock.Elapsed >= Bound)
            {
                return false;
            }
            await Task.Delay(1);
        }
        return true;
    }

    /// <summary>How long a stream of <paramref name="messages"/> may take before it counts as a
    /// hang: 30 s plus 100 µs a message, far above what a healthy run needs.</summary>
    public static TimeSpan ForMessages(long messages) => Bound + TimeSpan.FromMicroseconds(100.0 * messages);
}
