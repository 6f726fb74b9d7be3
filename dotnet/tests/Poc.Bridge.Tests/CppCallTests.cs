using Poc.Bridge.Futures;
using Poc.Bridge.Import;
using Xunit;

namespace Poc.Bridge.Tests;

/// <summary>
/// The .NET importer of C++ futures (bridge.h "Section - Futures", "Async calls exported by C++")
/// through the <see cref="CppCalls"/> facade: Asio timers on a <see cref="CppRuntime"/>.
/// </summary>
[Collection(FutureCallsCollection.Name)]
public sealed class CppCallTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan OneHour = TimeSpan.FromHours(1);

    [Theory]
    [InlineData(0)]
    [InlineData(20)]
    public async Task DelayedSquare_Seven_Returns49(int delayMs)
    {
        await using var runtime = new CppRuntime(threads: 1);
        ulong square = await CppCalls.DelayedSquareAsync(runtime, 7, TimeSpan.FromMilliseconds(delayMs))
            .AsTask().WaitAsync(Bound);
        Assert.Equal(49UL, square);
    }

    [Fact]
    public async Task DelayedSquare_LargestOperand_ReturnsItsSquare()
    {
        const ulong X = uint.MaxValue; // 2^32 - 1
        await using var runtime = new CppRuntime(threads: 1);
        ulong square = await CppCalls.DelayedSquareAsync(runtime, X, TimeSpan.Zero).AsTask().WaitAsync(Bound);
        Assert.Equal(X * X, square);
        Assert.Equal(18446744065119617025UL, square);
    }

    [Fact]
    public async Task DelayedSquare_Overflow_ThrowsRemoteCallException400()
    {
        await using var runtime = new CppRuntime(threads: 1);
        var error = await Assert.ThrowsAsync<RemoteCallException>(
            () => CppCalls.DelayedSquareAsync(runtime, 1UL << 32, TimeSpan.Zero).AsTask().WaitAsync(Bound));
        Assert.Equal(400, error.Code);
        Assert.Equal("overflow", error.RemoteMessage);
        Assert.Equal("delayed_square", error.Call);
    }

    [Fact]
    public async Task DelayedSquare_CancelledWhilePending_ThrowsOperationCanceled()
    {
        long live = FutureOperation.LiveFutures;
        await using var runtime = new CppRuntime(threads: 1);
        using var cts = new CancellationTokenSource();
        ValueTask<ulong> call = CppCalls.DelayedSquareAsync(runtime, 7, OneHour, cts.Token);
        Assert.False(call.IsCompleted, "a one-hour timer is pending");

        cts.Cancel();
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call.AsTask().WaitAsync(Bound));
        Assert.Equal(cts.Token, cancelled.CancellationToken);
        Assert.Equal(live, FutureOperation.LiveFutures);
    }

    [Fact]
    public async Task DelayedSquare_RuntimeShutdownWhilePending_ThrowsShutdown_AndLaterCallsThrowAtTheCall()
    {
        var runtime = new CppRuntime(threads: 1);
        ValueTask<ulong> call = CppCalls.DelayedSquareAsync(runtime, 7, OneHour);
        Assert.False(call.IsCompleted, "a one-hour timer is pending");

        await runtime.ShutdownAsync().AsTask().WaitAsync(Bound);
        var error = await Assert.ThrowsAsync<InteropException>(() => call.AsTask().WaitAsync(Bound));
        Assert.Equal(Status.Shutdown, error.Status);

        Assert.Equal(Status.Shutdown,
            Assert.Throws<InteropException>(() => CppCalls.DelayedSquareAsync(runtime, 7, TimeSpan.Zero)).Status);
        await runtime.DisposeAsync();
        Assert.Throws<ObjectDisposedException>(() => CppCalls.DelayedSquareAsync(runtime, 7, TimeSpan.Zero));
    }

    [Fact]
    public async Task DelayedSquare_InvalidArguments_ThrowAtTheCall()
    {
        await using var runtime = new CppRuntime(threads: 1);
        Assert.Throws<ArgumentNullException>(() => CppCalls.DelayedSquareAsync(null!, 7, TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => CppCalls.DelayedSquareAsync(runtime, 7, TimeSpan.FromMilliseconds(-1)));
        Assert.Throws<ArgumentOutOfRangeException>(
            () => CppCalls.DelayedSquareAsync(runtime, 7, TimeSpan.FromMilliseconds(uint.MaxValue + 1.0)));
    }

    [Fact]
    public async Task DelayedSquare_ManyConcurrentCalls_EachCompletesExactlyOnceWithItsSquare()
    {
        const int Calls = 200;
        long live = FutureOperation.LiveFutures;
        (long Strays, long Contained) diagnostics = (ImportDiagnostics.StrayCallbacks, ImportDiagnostics.ContainedExceptions);
        await using var runtime = new CppRuntime(threads: 2);
        int[] completions = new int[Calls];

        Task<ulong>[] calls = Enumerable.Range(0, Calls)
            .Select(i => Task.Run(async () =>
            {
                ulong square = await CppCalls.DelayedSquareAsync(runtime, (ulong)i, TimeSpan.FromMilliseconds(i % 3));
                Interlocked.Increment(ref completions[i]);
                return square;
            }))
            .ToArray();

        ulong[] squares = await Task.WhenAll(calls).WaitAsync(Bound);
        Assert.Equal(Enumerable.Range(0, Calls).Select(i => (ulong)i * (ulong)i), squares);
        Assert.All(completions, c => Assert.Equal(1, c));
        Assert.Equal(live, FutureOperation.LiveFutures);
        Assert.Equal(diagnostics, (ImportDiagnostics.StrayCallbacks, ImportDiagnostics.ContainedExceptions));
    }
}

/// <summary>
/// The classes that assert the process-wide future counters (<see cref="FutureOperation.LiveFutures"/>,
/// <see cref="ExportedFuture.LiveFutures"/>, <see cref="LentFunctions.LiveContexts"/>, the exporter's
/// wake counts): one collection, so their tests never run in parallel with each other.
/// </summary>
[CollectionDefinition(Name)]
public sealed class FutureCallsCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Future calls (shared future counters)";
}
