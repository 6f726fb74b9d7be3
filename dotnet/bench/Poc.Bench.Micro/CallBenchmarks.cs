using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using Poc.Bridge;

namespace Poc.Bench.Micro;

/// <summary>
/// The .NET import of an async call, one call per operation: <see cref="ImportedFunction.SquareAsync"/>
/// awaited on the "square" function lent by Rust or C++ (one runtime thread), in mode
/// <c>ready</c> (the first poll answers: no wake) or <c>posted</c> (the callee's runtime thread
/// finishes it and wakes the caller; the continuation runs on the thread pool). What MemoryDiagnoser
/// reports per operation is what the .NET side allocated for the call (the callee allocates natively
/// and is not counted). Each invocation awaits <see cref="Ops"/> calls in a pooled async method.
/// </summary>
public class CallBenchmarks
{
    public const int Ops = 256;

    [Params("Rust", "C++")]
    public string Callee { get; set; } = "Rust";

    [Params("ready", "posted")]
    public string Mode { get; set; } = "ready";

    private IBridgeRuntime? _runtime;
    private ImportedFunction _square = null!;

    [GlobalSetup]
    public void Setup()
    {
        SquareMode mode = Mode == "ready" ? SquareMode.Ready : SquareMode.Posted;
        if (Callee == "Rust")
        {
            var rt = new RustRuntime();
            _runtime = rt;
            _square = RustCalls.SquareFunction(rt, mode, TimeSpan.Zero);
        }
        else
        {
            var rt = new CppRuntime();
            _runtime = rt;
            _square = CppCalls.SquareFunction(rt, mode, TimeSpan.Zero);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _square.Dispose();
        _runtime?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _runtime = null;
    }

    [Benchmark(OperationsPerInvoke = Ops)]
    public ValueTask Call() => CallLoop();

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask CallLoop()
    {
        ulong sum = 0;
        for (ulong x = 1; x <= Ops; x++) sum += await _square.SquareAsync(x);
        const ulong expected = (ulong)Ops * (Ops + 1) * (2 * Ops + 1) / 6;
        if (sum != expected) throw new InvalidOperationException($"sum of {Ops} squares is {sum}, expected {expected}");
    }
}
