using Xunit;

namespace Poc.Bridge.Tests;

/// <summary>
/// Allocations of the .NET import of async calls, measured process-wide
/// (<see cref="GC.GetTotalAllocatedBytes(bool)"/>): so these run in the non-parallel collection,
/// alone. Every call here waits for the callee's timer, so each one suspends its awaiting method.
/// </summary>
[Collection(BridgeDiagnosticsCollection.Name)]
public sealed class CallAllocationTests
{
    [Fact]
    public async Task Awaited_calls_that_suspend_allocate_nothing_per_call_once_warm()
    {
        await using var rust = new RustRuntime();
        using ImportedFunction square = RustCalls.SquareFunction(rust, SquareMode.Timer, TimeSpan.FromMilliseconds(1));
        const int calls = 200;
        ulong sum = 0;
        for (ulong x = 1; x <= 20; x++) sum += await square.SquareAsync(x); // warm up: JIT, pools
        long before = GC.GetTotalAllocatedBytes(precise: true);
        for (ulong x = 1; x <= calls; x++) sum += await square.SquareAsync(x);
        long perCall = (GC.GetTotalAllocatedBytes(precise: true) - before) / calls;
        Assert.Equal(20UL * 21 * 41 / 6 + (ulong)calls * (calls + 1) * (2 * calls + 1) / 6, sum);
        // A suspended SquareAsync used to allocate its mapping state machine (~190 B) per call; the
        // op and that box are pooled now. The margin covers the runtime's own occasional allocations
        // on other threads (timers, thread pool), which are not per call.
        Assert.True(perCall < 48, $"{perCall} B allocated per suspended call");
    }
}
