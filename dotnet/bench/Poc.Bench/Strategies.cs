using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Poc.Bridge;
using Poc.Bridge.Interop;

namespace Poc.Bench;

/// <summary>One strategy figure: ops per second of one way of awaiting a foreign operation.</summary>
/// <param name="Strategy">Stable id: <c>poc</c>, <c>tcs_locked_dictionary</c>, <c>continuation_per_poll</c>
/// (here), <c>blocking_future</c>, <c>busy_polling</c> (the Rust program).</param>
/// <param name="Pair">"caller→callee" (or "producer→owner" for sends).</param>
/// <param name="Op">"call" (an async call of the posted square) or "send".</param>
/// <param name="CpuNsPerOp">Process CPU time (user + system, all threads) over the timed runs ÷ ops.</param>
internal sealed record StrategyRow(string Strategy, string Label, string Pair, string Op, int InFlight, Stats OpsPerSecond,
    int Ops, int Runs, double CpuNsPerOp, string What, string Source)
{
    /// <summary>Managed bytes allocated (all threads) per op, median of the timed runs (.NET rows; null elsewhere).</summary>
    public double? BytesPerOp { get; init; }

    /// <summary>Share of the sends whose first poll returned Pending (they waited for room and
    /// completed through the exporter's pending path), median of the timed runs, with its
    /// min/max (Rust→C++ <c>poc</c> rows; null elsewhere).</summary>
    public Stats? PendingShare { get; init; }

    /// <summary>ops/s ÷ the <c>poc</c> row's ops/s of the same pair, op and in-flight count.</summary>
    public double? RatioVsPoc { get; set; }
}

/// <summary>
/// The peers' ways of awaiting a foreign async operation from C#, reimplemented as labelled
/// baselines over the same C ABI and the same callee (the "square" function in POSTED mode of the
/// Rust or C++ runtime: every call goes PENDING and is woken from the callee runtime's thread),
/// beside Poc's adapter (<see cref="ImportedFunction.SquareAsync"/>, a pooled IValueTaskSource):
/// <list type="bullet">
/// <item><c>tcs_locked_dictionary</c> (Interoptopus' generated C#): per call a
/// <see cref="TaskCompletionSource{T}"/> stored under a lock in a static dictionary keyed by an
/// increasing id; the native callback is a delegate marshalled with
/// <see cref="Marshal.GetFunctionPointerForDelegate{TDelegate}(TDelegate)"/>, which takes the lock,
/// removes the entry and completes it.</item>
/// <item><c>continuation_per_poll</c> (the foreign-side polling loop of UniFFI's bindings and
/// BoltFFI's): per poll a new continuation object (a TaskCompletionSource) pinned by a
/// <see cref="GCHandle"/> and passed as the wake's user pointer; the wake completes it, the loop
/// awaits it and polls again.</item>
/// </list>
/// Both baselines run their continuations asynchronously (on the thread pool): Poc's contract forbids
/// polling from inside the wake, which an inline continuation would do (Interoptopus completes its
/// source inline, with the result in hand — a completion callback, not a wake). Calls are made
/// <c>in_flight</c> at a time: 1 (one loop) or 64 (64 loops on the thread pool, each making its share).
/// </summary>
internal static class Strategies
{
    public static readonly int[] InFlight = [1, 64];
    public static readonly string[] Callees = ["Rust", "C++"];
    public static readonly string[] Ids = ["poc", "tcs_locked_dictionary", "continuation_per_poll"];

    public static int Figures => InFlight.Length * Callees.Length * Ids.Length;

    private static readonly Dictionary<string, string> Labels = new()
    {
        ["poc"] = "Poc: ImportedFunction.SquareAsync (pooled IValueTaskSource, UnmanagedCallersOnly wake)",
        ["tcs_locked_dictionary"] = "Interoptopus-style: TaskCompletionSource per call in a locked static dictionary, delegate-marshalled callback",
        ["continuation_per_poll"] = "UniFFI/BoltFFI-style: a new continuation object (TaskCompletionSource + GCHandle) per poll",
    };

    public static async Task<List<StrategyRow>> RunAsync(CppRuntime cpp, RustRuntime rust, BenchConfig cfg, Progress progress)
    {
        var rows = new List<StrategyRow>();
        using var raw = new RawRuntimes();
        foreach (string callee in Callees)
        foreach (int inFlight in InFlight)
        foreach (string id in Ids)
        {
            int ops = cfg.StrategyCalls;
            Func<int, int, Task<ulong>> loop;
            ImportedFunction? poc = null;
            poc_async_fn fn = default;
            if (id == "poc")
            {
                poc = callee == "Rust"
                    ? RustCalls.SquareFunction(rust, SquareMode.Posted, TimeSpan.Zero)
                    : CppCalls.SquareFunction(cpp, SquareMode.Posted, TimeSpan.Zero);
                ImportedFunction f = poc;
                loop = (first, count) => PocLoop(f, first, count);
            }
            else
            {
                fn = raw.PostedSquare(callee);
                poc_async_fn captured = fn;
                loop = id == "tcs_locked_dictionary"
                    ? (first, count) => DictionaryLoop(captured, first, count)
                    : (first, count) => ContinuationLoop(captured, first, count);
            }
            try
            {
                var cpu = new List<double>();
                var bytes = new List<double>();
                Stats s = await Measure.RunsAsync(async () =>
                {
                    var (opsPerSecond, cpuNs, allocated) = await OnceAsync(loop, ops, inFlight, $"{id} C#→{callee}");
                    cpu.Add(cpuNs / ops);
                    bytes.Add(allocated / ops);
                    return opsPerSecond;
                }, cfg.StrategyRuns, BenchConfig.MinWarmup);
                // The last StrategyRuns entries are the timed runs' (the warm-up runs came first).
                double cpuPerOp = Stats.Of(cpu.TakeLast(cfg.StrategyRuns).ToList()).Median;
                double bytesPerOp = Stats.Of(bytes.TakeLast(cfg.StrategyRuns).ToList()).Median;
                var row = new StrategyRow(id, Labels[id], $"C#→{callee}", "call", inFlight, s, ops, cfg.StrategyRuns,
                    cpuPerOp, What(id, callee, inFlight, ops), "Poc.Bench") { BytesPerOp = bytesPerOp };
                rows.Add(row);
                progress.Step($"strategy {id} C#→{callee} call, {inFlight} in flight: {s.Median:F0} calls/s ({s.Min:F0}–{s.Max:F0}), CPU {row.CpuNsPerOp:F0} ns/call, {bytesPerOp:F0} B/call");
            }
            finally
            {
                poc?.Dispose();
                if (id != "poc") Release(fn);
            }
        }
        return rows;
    }

    private static string What(string id, string callee, int inFlight, int ops)
    {
        string callees = callee == "Rust"
            ? "the Rust \"square\" in POSTED mode (poc_rust_square_fn: a tokio task on a 1-thread Rust runtime completes it)"
            : "the C++ \"square\" in POSTED mode (poc_cpp_square_fn: an asio::post on a 1-thread C++ runtime completes it)";
        string how = id switch
        {
            "poc" => "ImportedFunction.SquareAsync(x) awaited (Poc.Bridge's import: a pooled IValueTaskSource per op, the wake an UnmanagedCallersOnly function that completes it; the continuation runs on the thread pool)",
            "tcs_locked_dictionary" => "per call: poc_async_fn.call, then poll; on PENDING a TaskCompletionSource is stored under a lock in a static Dictionary<long, TCS> keyed by an Interlocked-incremented id; the wake is a delegate marshalled with Marshal.GetFunctionPointerForDelegate that takes the lock, removes the entry and sets it (RunContinuationsAsynchronously); the awaiting loop then polls again",
            _ => "per call: poc_async_fn.call, then per poll a new continuation (a TaskCompletionSource, RunContinuationsAsynchronously) pinned with GCHandle.Alloc and passed as the wake's user pointer; the wake (UnmanagedCallersOnly) sets it and frees the handle; the loop awaits it and polls again",
        };
        return $"C# calls {callees}, {ops} calls per run, {inFlight} in flight ({(inFlight == 1 ? "one loop" : $"{inFlight} loops started with Task.Run, each making {ops / inFlight} calls")}): {how}; every loop checks the sum of its squares";
    }

    /// <summary>One timed run: <paramref name="inFlight"/> loops share <paramref name="ops"/> calls;
    /// ops per second, process CPU ns and managed bytes allocated on all threads (which includes the
    /// runs' own tasks: 64 Task.Run loops, a few hundred bytes per run, not per op).</summary>
    private static async Task<(double OpsPerSecond, double CpuNs, double Bytes)> OnceAsync(Func<int, int, Task<ulong>> loop, int ops, int inFlight, string what)
    {
        int per = ops / inFlight;
        if (per * inFlight != ops) throw new ArgumentException($"{ops} calls do not divide into {inFlight} loops");
        long b0 = GC.GetTotalAllocatedBytes(precise: true);
        TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        long t0 = Stopwatch.GetTimestamp();
        ulong[] sums;
        if (inFlight == 1) sums = [await loop(1, per)];
        else
        {
            var tasks = new Task<ulong>[inFlight];
            for (int k = 0; k < inFlight; k++)
            {
                int first = 1 + k * per;
                tasks[k] = Task.Run(() => loop(first, per));
            }
            sums = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromMinutes(2));
        }
        long t1 = Stopwatch.GetTimestamp();
        TimeSpan cpu1 = Process.GetCurrentProcess().TotalProcessorTime;
        long b1 = GC.GetTotalAllocatedBytes(precise: true);
        for (int k = 0; k < inFlight; k++)
        {
            ulong expected = SumOfSquares((ulong)(1 + k * per), (ulong)per);
            if (sums[k] != expected)
                throw new InvalidOperationException($"strategy {what}: loop {k} summed {sums[k]}, expected {expected}");
        }
        return (ops / (Measure.TicksToNs(t1 - t0) / 1e9), (cpu1 - cpu0).TotalMilliseconds * 1e6, b1 - b0);
    }

    private static ulong SumOfSquares(ulong first, ulong count)
    {
        ulong sum = 0;
        for (ulong x = first; x < first + count; x++) sum += x * x;
        return sum;
    }

    private static async Task<ulong> PocLoop(ImportedFunction f, int first, int count)
    {
        ulong sum = 0;
        for (int i = 0; i < count; i++) sum += await f.SquareAsync((ulong)(first + i));
        return sum;
    }

    // ---------------------------------------------------------------------------------------------
    // Shared: start a call, deliver the value
    // ---------------------------------------------------------------------------------------------

    /// <summary>Where a poll that finished delivers its value (the deliver callback gets the same
    /// user pointer as the wake).</summary>
    private interface IResultHolder
    {
        int Status { get; set; }
        ulong Value { get; set; }
    }

    private const int PocOk = 0;      // bridge.h POC_OK
    private const int PocPending = 1; // bridge.h POC_PENDING

    private static unsafe void Release(poc_async_fn fn) => fn.release(fn.context);

    private static unsafe poc_future StartCall(poc_async_fn fn, ulong x)
    {
        var arg = new poc_message_view { id = x, data = null, len = 0 };
        poc_future fut;
        int st = fn.call(fn.context, &arg, &fut);
        if (st != PocOk) throw new InvalidOperationException($"square({x}): call answered status {st}");
        return fut;
    }

    private static unsafe ulong Finish(poc_future fut, int status, IResultHolder r, ulong x)
    {
        fut.vtable->release(fut.handle);
        if (status != PocOk || r.Status != PocOk) throw new InvalidOperationException($"square({x}): poll answered {status}, delivered {r.Status}");
        if (r.Value != x * x) throw new InvalidOperationException($"square({x}) = {r.Value}");
        return r.Value;
    }

    [UnmanagedCallersOnly]
    private static unsafe void DeliverToHandle(void* user, int status, poc_message_view* value)
    {
        if (GCHandle.FromIntPtr((nint)user).Target is IResultHolder r)
        {
            r.Status = status;
            r.Value = value->id;
        }
    }

    // ---------------------------------------------------------------------------------------------
    // tcs_locked_dictionary (Interoptopus-style)
    // ---------------------------------------------------------------------------------------------

    /// <summary>One poll's entry in the dictionary: its source, and where deliver writes the value.</summary>
    private sealed class DictionaryCall : IResultHolder
    {
        public readonly TaskCompletionSource<bool> Tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Status { get; set; }
        public ulong Value { get; set; }
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate void WakeDelegate(nint user);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private unsafe delegate void DeliverDelegate(nint user, int status, poc_message_view* value);

    private static readonly object PendingLock = new();
    private static readonly Dictionary<long, DictionaryCall> Pending = [];
    private static long _nextId;
    // Both delegates stay reachable for the process's lifetime (static), so their thunks stay valid.
    private static readonly WakeDelegate WakeDelegateInstance = OnDictionaryWake;
    private static readonly unsafe DeliverDelegate DeliverDelegateInstance = OnDictionaryDeliver;
    private static readonly nint WakeDelegatePointer = Marshal.GetFunctionPointerForDelegate(WakeDelegateInstance);
    private static readonly nint DeliverDelegatePointer = Marshal.GetFunctionPointerForDelegate(DeliverDelegateInstance);

    private static void OnDictionaryWake(nint user)
    {
        DictionaryCall? call;
        lock (PendingLock) Pending.Remove(user, out call);
        if (call is null) throw new InvalidOperationException($"wake for unknown call {user}");
        call.Tcs.SetResult(true);
    }

    private static unsafe void OnDictionaryDeliver(nint user, int status, poc_message_view* value)
    {
        DictionaryCall? call;
        lock (PendingLock) Pending.TryGetValue(user, out call);
        if (call is null) throw new InvalidOperationException($"value for unknown call {user}");
        call.Status = status;
        call.Value = value->id;
    }

    private static unsafe int PollWithDictionary(poc_future fut, long id) =>
        fut.vtable->poll(fut.handle, (delegate* unmanaged<void*, void>)WakeDelegatePointer,
            (delegate* unmanaged<void*, int, poc_message_view*, void>)DeliverDelegatePointer, (void*)id);

    private static async Task<ulong> DictionaryLoop(poc_async_fn fn, int first, int count)
    {
        ulong sum = 0;
        for (int i = 0; i < count; i++)
        {
            ulong x = (ulong)(first + i);
            poc_future fut = StartCall(fn, x);
            while (true)
            {
                long id = Interlocked.Increment(ref _nextId);
                var call = new DictionaryCall();
                lock (PendingLock) Pending.Add(id, call);
                int st = PollWithDictionary(fut, id);
                if (st == PocPending)
                {
                    await call.Tcs.Task; // the wake removed the entry
                    continue;
                }
                lock (PendingLock) Pending.Remove(id);
                sum += Finish(fut, st, call, x);
                break;
            }
        }
        return sum;
    }

    // ---------------------------------------------------------------------------------------------
    // continuation_per_poll (UniFFI / BoltFFI bindings' polling loop)
    // ---------------------------------------------------------------------------------------------

    private sealed class Continuation : IResultHolder
    {
        public readonly TaskCompletionSource<bool> Tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Status { get; set; }
        public ulong Value { get; set; }
    }

    [UnmanagedCallersOnly]
    private static unsafe void OnContinuationWake(void* user)
    {
        GCHandle h = GCHandle.FromIntPtr((nint)user);
        var c = (Continuation)h.Target!;
        h.Free();
        c.Tcs.SetResult(true);
    }

    private static unsafe int PollWithContinuation(poc_future fut, GCHandle h) =>
        fut.vtable->poll(fut.handle, &OnContinuationWake, &DeliverToHandle, (void*)GCHandle.ToIntPtr(h));

    private static async Task<ulong> ContinuationLoop(poc_async_fn fn, int first, int count)
    {
        ulong sum = 0;
        for (int i = 0; i < count; i++)
        {
            ulong x = (ulong)(first + i);
            poc_future fut = StartCall(fn, x);
            while (true)
            {
                var c = new Continuation();
                GCHandle h = GCHandle.Alloc(c);
                int st = PollWithContinuation(fut, h);
                if (st == PocPending)
                {
                    await c.Tcs.Task; // the wake freed the handle
                    continue;
                }
                h.Free();
                sum += Finish(fut, st, c, x);
                break;
            }
        }
        return sum;
    }

    // ---------------------------------------------------------------------------------------------
    // The raw C ABI: Poc.Bridge's own declarations (Interop/NativeMethods.cs, checked against
    // bridge.h by NativeDeclarationTests), visible to this project for these baselines only
    // ---------------------------------------------------------------------------------------------

    /// <summary>A Rust and a C++ runtime (one thread each) made through the C ABI, and the posted
    /// square functions of each.</summary>
    private sealed class RawRuntimes : IDisposable
    {
        private nint _rust, _cpp;

        public unsafe RawRuntimes()
        {
            nint r, c;
            Check(NativeMethods.poc_rust_runtime_new(1, &r), "poc_rust_runtime_new");
            _rust = r;
            Check(NativeMethods.poc_cpp_runtime_new(1, &c), "poc_cpp_runtime_new");
            _cpp = c;
        }

        public unsafe poc_async_fn PostedSquare(string callee)
        {
            poc_async_fn fn;
            Check(callee == "Rust" ? NativeMethods.poc_rust_square_fn(_rust, 1, 0, &fn) : NativeMethods.poc_cpp_square_fn(_cpp, 1, 0, &fn),
                $"{callee} square fn");
            return fn;
        }

        public void Dispose()
        {
            if (_rust != 0) { NativeMethods.poc_rust_runtime_shutdown(_rust); NativeMethods.poc_rust_runtime_free(_rust); _rust = 0; }
            if (_cpp != 0) { NativeMethods.poc_cpp_runtime_shutdown(_cpp); NativeMethods.poc_cpp_runtime_free(_cpp); _cpp = 0; }
        }

        private static void Check(int status, string what)
        {
            if (status != 0) throw new InvalidOperationException($"{what}: status {status}");
        }
    }
}
