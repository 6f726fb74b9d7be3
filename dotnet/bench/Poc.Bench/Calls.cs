using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Poc.Bridge;

namespace Poc.Bench;

/// <summary>One async-call figure: a caller of one runtime awaiting the "square" function of another.</summary>
/// <param name="NsPerCall">Median over the timed runs (null: not measured, see <paramref name="Note"/>).</param>
internal sealed record CallRow(string Caller, string Callee, string Mode, Stats? NsPerCall, int Count, int Runs, string Note)
{
    public double? NativeNs { get; set; }
    public string? NativeWhat { get; set; }
    public double? Ratio => NsPerCall is { } s && NativeNs is { } n && n > 0 ? s.Median / n : null;
}

/// <summary>A runtime's native equivalent of an awaited call (no Poc code).</summary>
internal sealed record NativeCall(string Runtime, string Mode, Stats? Ns, string What);

/// <summary>
/// Async calls (continuation-polled futures) in every direction: callers C#, Rust, C++ × callees
/// C#, Rust, C++, the square function in modes "ready" (finished inside the call) and "posted"
/// (finished by another thread of the callee's runtime, which wakes the caller).
/// </summary>
internal static class Calls
{
    public static readonly string[] Modes = ["ready", "posted"];
    public static readonly string[] Runtimes = ["C#", "Rust", "C++"];

    public static int Figures => Runtimes.Length * Runtimes.Length * Modes.Length + Modes.Length + 1;

    public static SquareMode ModeOf(string mode) => mode == "ready" ? SquareMode.Ready : SquareMode.Posted;

    public static async Task<(List<CallRow> Rows, List<NativeCall> Native)> RunAsync(CppRuntime cpp, RustRuntime rust,
        BenchConfig cfg, Progress progress)
    {
        var native = new List<NativeCall>();
        foreach (string mode in Modes)
        {
            int count = CountOf(cfg, mode);
            Stats s = mode == "ready"
                ? await Measure.RunsAsync(() => NativeReadyOnce(count), cfg.CallRuns, BenchConfig.MinWarmup)
                : await Measure.RunsAsync(() => NativePostedOnce(count), cfg.CallRuns, BenchConfig.MinWarmup);
            native.Add(new NativeCall("C#", mode, s, mode == "ready"
                ? "awaiting a non-inlined async ValueTask<ulong> method that completes without suspending, in a loop"
                : "per call: a TaskCompletionSource<ulong> (RunContinuationsAsynchronously) set by a dedicated completer thread " +
                  "(fed through a BlockingCollection, parked when idle) and awaited on the thread pool: two thread hops per call"));
            progress.Step($"C# native call, {mode}: {s.Median:F0} ns/call");
        }
        {
            Interlocked.Exchange(ref _poolOtherThread, 0);
            int count = cfg.PostedCalls;
            Stats s = await Measure.RunsAsync(() => NativePoolPostedOnce(count), cfg.CallRuns, BenchConfig.MinWarmup);
            double other = 100.0 * Interlocked.Read(ref _poolOtherThread) / ((cfg.CallRuns + 1.0) * count);
            native.Add(new NativeCall("C#", "posted_thread_pool", s,
                "per call: a TaskCompletionSource<ulong> (RunContinuationsAsynchronously) set by a thread-pool work item " +
                $"(ThreadPool.UnsafeQueueUserWorkItem, global queue) and awaited; set on another thread than the awaiting one in {other:F0}% of the calls"));
            progress.Step($"C# native call, posted_thread_pool: {s.Median:F0} ns/call ({other:F0}% on another thread)");
        }

        var rows = new List<CallRow>();
        foreach (string caller in Runtimes)
        foreach (string callee in Runtimes)
        foreach (string mode in Modes)
        {
            int count = CountOf(cfg, mode);
            SquareMode m = ModeOf(mode);
            CallRow row;
            if (caller == "C#")
            {
                using ImportedFunction f = callee switch
                {
                    "C#" => ExportedFunction.Square(m, TimeSpan.Zero).ImportThroughAbi(),
                    "Rust" => RustCalls.SquareFunction(rust, m, TimeSpan.Zero),
                    _ => CppCalls.SquareFunction(cpp, m, TimeSpan.Zero),
                };
                Stats s = await Measure.RunsAsync(() => CSharpCallerOnce(f, count), cfg.CallRuns, BenchConfig.MinWarmup);
                row = new CallRow(caller, callee, mode, s, count, cfg.CallRuns,
                    "C# loop awaiting ImportedFunction.SquareAsync; ns/call = elapsed / calls");
            }
            else
            {
                Func<AsyncFunction> make = callee switch
                {
                    "C#" => () => ExportedFunction.Square(m, TimeSpan.Zero),
                    "Rust" => () => RustCalls.SquareFunction(rust, m, TimeSpan.Zero),
                    _ => () => CppCalls.SquareFunction(cpp, m, TimeSpan.Zero),
                };
                Stats s = await Measure.RunsAsync(() => NativeCallerOnce(caller, cpp, make, count), cfg.CallRuns, BenchConfig.MinWarmup);
                row = new CallRow(caller, callee, mode, s, count, cfg.CallRuns,
                    $"{(caller == "Rust" ? "RustCalls" : "CppCalls")}.SumCallsAsync: {count} awaits inside one .NET await; ns/call = elapsed / count (the outer await amortised)");
            }
            rows.Add(row);
            progress.Step(row.NsPerCall is { } st
                ? $"call {caller} -> {callee} {mode}: {st.Median:F0} ns/call ({st.Min:F0}–{st.Max:F0})"
                : $"call {caller} -> {callee} {mode}: not measured");
        }
        return (rows, native);
    }

    public static int CountOf(BenchConfig cfg, string mode) => mode == "ready" ? cfg.ReadyCalls : cfg.PostedCalls;

    /// <summary>Σ x² for x = 1..n (what the calls must add up to).</summary>
    private static ulong SumOfSquares(int n) => (ulong)n * (ulong)(n + 1) * (ulong)(2 * n + 1) / 6;

    private static void Check(string what, ulong sum, int count)
    {
        ulong expected = SumOfSquares(count);
        if (sum != expected)
            throw new InvalidOperationException($"{what}: sum of {count} squares is {sum}, expected {expected}");
    }

    private static async Task<double> CSharpCallerOnce(ImportedFunction f, int count)
    {
        ulong sum = 0;
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 1; i <= count; i++) sum += await f.SquareAsync((ulong)i);
        long t1 = Stopwatch.GetTimestamp();
        Check($"C# -> {f.Name}", sum, count);
        return Measure.TicksToNs(t1 - t0) / count;
    }

    private static async Task<double> NativeCallerOnce(string caller, CppRuntime cpp, Func<AsyncFunction> make, int count)
    {
        AsyncFunction callee = make();
        long t0 = Stopwatch.GetTimestamp();
        ulong sum = caller == "Rust"
            ? await RustCalls.SumCallsAsync(callee, 1, count)
            : await CppCalls.SumCallsAsync(cpp, callee, 1, count);
        long t1 = Stopwatch.GetTimestamp();
        Check($"{caller} sum_calls", sum, count);
        return Measure.TicksToNs(t1 - t0) / count;
    }

    // An async method that finishes without suspending: what a plain C# async call that is ready
    // at once costs its awaiting caller (the state machine, no allocation, no thread hop).
#pragma warning disable CS1998 // no await inside: completing synchronously is the point
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static async ValueTask<ulong> SquareReady(ulong x) => x * x;
#pragma warning restore CS1998

    private static async Task<double> NativeReadyOnce(int count)
    {
        ulong sum = 0;
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 1; i <= count; i++) sum += await SquareReady((ulong)i);
        long t1 = Stopwatch.GetTimestamp();
        Check("C# native ready", sum, count);
        return Measure.TicksToNs(t1 - t0) / count;
    }

    private sealed class PostedCall(ulong x)
    {
        public readonly TaskCompletionSource<ulong> Tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly ulong X = x;
    }

    private static long _poolOtherThread;

    /// <summary>An extra native figure ("posted_thread_pool"): per call a TaskCompletionSource set by
    /// a thread-pool work item (global queue); the awaiting pool thread often runs that item itself
    /// once it yields, so this is mostly a same-thread hop. Counts how often it was another thread.</summary>
    private static async Task<double> NativePoolPostedOnce(int count)
    {
        ulong sum = 0;
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 1; i <= count; i++)
        {
            var call = new PostedCall((ulong)i);
            int awaiting = Environment.CurrentManagedThreadId;
            ThreadPool.UnsafeQueueUserWorkItem(c =>
            {
                if (Environment.CurrentManagedThreadId != awaiting) Interlocked.Increment(ref _poolOtherThread);
                c.Tcs.SetResult(c.X * c.X);
            }, call, preferLocal: false);
            sum += await call.Tcs.Task;
        }
        long t1 = Stopwatch.GetTimestamp();
        Check("C# native posted_thread_pool", sum, count);
        return Measure.TicksToNs(t1 - t0) / count;
    }

    /// <summary>The native posted baseline: per call a TaskCompletionSource, queued to a dedicated
    /// completer thread (a BlockingCollection: it parks when idle, like another runtime's worker)
    /// that sets it; the awaiting continuation then runs on the thread pool — two thread hops per
    /// call, as for a Poc call completed by another runtime's thread.</summary>
    private static async Task<double> NativePostedOnce(int count)
    {
        using var queue = new BlockingCollection<PostedCall>();
        var completer = new Thread(() =>
        {
            foreach (var c in queue.GetConsumingEnumerable()) c.Tcs.SetResult(c.X * c.X);
        }) { IsBackground = true, Name = "native posted completer" };
        completer.Start();
        ulong sum = 0;
        long t0 = Stopwatch.GetTimestamp();
        try
        {
            for (int i = 1; i <= count; i++)
            {
                var call = new PostedCall((ulong)i);
                queue.Add(call);
                sum += await call.Tcs.Task;
            }
        }
        finally
        {
            queue.CompleteAdding();
        }
        long t1 = Stopwatch.GetTimestamp();
        completer.Join();
        Check("C# native posted", sum, count);
        return Measure.TicksToNs(t1 - t0) / count;
    }
}
