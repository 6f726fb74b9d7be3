using Poc.Bridge.Futures;
using Poc.Bridge.Interop;
using Xunit;
using static Poc.Bridge.Tests.FutureExportTestSupport;

namespace Poc.Bridge.Tests;

/// <summary>
/// C# awaiting functions that Rust and C++ lend to it (<see cref="RustCalls.SquareFunction"/>,
/// <see cref="CppCalls.SquareFunction"/>: the "square" example of bridge.h) through
/// <see cref="ImportedFunction"/>, and handing such a function over to a native caller.
/// </summary>
[Collection(FutureCallsCollection.Name)]
public sealed class LentNativeFunctionTests
{
    private static readonly TimeSpan OneHour = TimeSpan.FromHours(1);

    public static TheoryData<string> Lenders => new() { "Rust", "C++" };

    [Theory]
    [MemberData(nameof(Lenders))]
    public async Task Ready_CompletesSynchronously_WithTheSquare(string lender)
    {
        LiveCounts start = LiveCounts.Now;
        await using var host = new Lender(lender);
        using ImportedFunction square = host.Square(SquareMode.Ready, TimeSpan.Zero);
        Assert.Equal("square", square.Name);

        ValueTask<ulong> seven = square.SquareAsync(7);
        Assert.True(seven.IsCompletedSuccessfully, "a READY square is computed in the call: the first poll answers");
        Assert.Equal(49UL, await seven);
        ValueTask<ulong> largest = square.SquareAsync(uint.MaxValue);
        Assert.True(largest.IsCompletedSuccessfully);
        Assert.Equal(18446744065119617025UL, await largest);

        Message raw = await square.CallAsync(new Message(12, "ignored payload"u8.ToArray())).Within("a raw call");
        Assert.Equal(new Message(144).Id, raw.Id);
        Assert.True(raw.Payload.IsEmpty);
        await WaitForLiveCountsAsync(start);
    }

    [Fact]
    public async Task RustReady_NeedsNoRuntime()
    {
        using ImportedFunction square = RustCalls.SquareFunction(null, SquareMode.Ready, TimeSpan.Zero);
        ValueTask<ulong> call = square.SquareAsync(11);
        Assert.True(call.IsCompletedSuccessfully);
        Assert.Equal(121UL, await call);
        Assert.Throws<ArgumentNullException>(() => RustCalls.SquareFunction(null, SquareMode.Posted, TimeSpan.Zero));
        Assert.Throws<ArgumentNullException>(() => RustCalls.SquareFunction(null, SquareMode.Timer, TimeSpan.Zero));
    }

    [Theory]
    [MemberData(nameof(Lenders))]
    public async Task PostedAndTimer_PendingThenWokenByTheLendersThread(string lender)
    {
        LiveCounts start = LiveCounts.Now;
        Mishaps mishaps = Mishaps.Now;
        long strayPortCalls = RuntimeThreadBlocker.StrayCalls;
        // The lender runs on one thread, and the test holds that thread while it makes the calls:
        // nothing of the lender can run before the caller's first poll, whatever the scheduling.
        await using var host = new Lender(lender, threads: 1);
        var lenderThreads = new HashSet<int>();
        foreach ((SquareMode mode, TimeSpan delay) in new[] { (SquareMode.Posted, TimeSpan.Zero), (SquareMode.Timer, TimeSpan.FromMilliseconds(5)) })
        {
            using ImportedFunction square = host.Square(mode, delay);
            // The same function driven through its raw vtable, to see which thread wakes the call.
            poc_async_fn raw = host.Square(mode, delay).Lend();
            try
            {
                using RuntimeThreadBlocker blocker = await RuntimeThreadBlocker.BlockAsync(host.Runtime);
                int lenderThread = blocker.ThreadId;
                Assert.NotEqual(Environment.CurrentManagedThreadId, lenderThread);
                lenderThreads.Add(lenderThread);

                ValueTask<ulong> call = square.SquareAsync(7);
                Assert.False(call.IsCompleted, $"{lender} {mode}: the call is pending at its first poll (the lender's thread is held)");

                Assert.Equal((int)Status.Ok, Raw.Call(raw, 9, out poc_future future));
                var probe = new FutureProbe();
                Assert.Equal((int)Status.Pending, probe.Poll(future));
                Assert.Equal(0, probe.Wakes);

                // Let the lender's thread go: it finishes both calls and wakes them.
                await blocker.FinishAsync();
                Assert.Equal(49UL, await call.Within($"{mode} square(7)"));

                await probe.WaitForWakeAsync($"the wake of {mode} square(9)");
                Assert.Equal(lenderThread, probe.LastWakeThread);
                Assert.Equal((int)Status.Ok, probe.Poll(future));
                Assert.Equal((1, 1, (int)Status.Ok, 81UL), (probe.Wakes, probe.Delivers, probe.DeliveredStatus, probe.Delivered.Id));
                Assert.Equal((int)Status.Ok, Raw.Release(future));
            }
            finally
            {
                Raw.Release(raw);
            }
        }
        Assert.Single(lenderThreads); // both blockers held the same thread: the lender's only one
        await WaitForLiveCountsAsync(start);
        Assert.Equal(mishaps, Mishaps.Now);
        Assert.Equal(strayPortCalls, RuntimeThreadBlocker.StrayCalls);
    }

    public static TheoryData<string, SquareMode> LendersAndModes => new()
    {
        { "Rust", SquareMode.Ready }, { "Rust", SquareMode.Posted }, { "Rust", SquareMode.Timer },
        { "C++", SquareMode.Ready }, { "C++", SquareMode.Posted }, { "C++", SquareMode.Timer },
    };

    [Theory]
    [MemberData(nameof(LendersAndModes))]
    public async Task Overflow_ThrowsRemoteCallException400(string lender, SquareMode mode)
    {
        await using var host = new Lender(lender);
        using ImportedFunction square = host.Square(mode, TimeSpan.Zero);
        var error = await Assert.ThrowsAsync<RemoteCallException>(() => square.SquareAsync(1UL << 32).Within("the overflowing call"));
        Assert.Equal(400, error.Code);
        Assert.Equal("overflow", error.RemoteMessage);
        Assert.Equal("square", error.Call);
    }

    [Theory]
    [MemberData(nameof(LendersAndModes))]
    public async Task FailureInTheLender_IsContainedAsPanic_AndTheFunctionStillWorks(string lender, SquareMode mode)
    {
        LiveCounts start = LiveCounts.Now;
        await using var host = new Lender(lender);
        using ImportedFunction square = host.Square(mode, TimeSpan.Zero);
        var panic = await Assert.ThrowsAsync<InteropException>(() => square.SquareAsync(ulong.MaxValue).Within("the panicking call"));
        Assert.Equal(Status.Panic, panic.Status);
        Assert.StartsWith("square failed in the callee (", panic.Message, StringComparison.Ordinal);
        Assert.Equal(36UL, await square.SquareAsync(6).Within("the call after the panic"));
        await WaitForLiveCountsAsync(start);
    }

    [Theory]
    [MemberData(nameof(Lenders))]
    public async Task CancelledBeforeTheFirstPoll_EndsCancelledSynchronously(string lender)
    {
        LiveCounts start = LiveCounts.Now;
        await using var host = new Lender(lender);
        using ImportedFunction square = host.Square(SquareMode.Timer, OneHour);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        ValueTask<ulong> call = square.SquareAsync(7, cts.Token);
        Assert.True(call.IsCanceled, "a cancelled token cancels the future before its first poll");
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call.AsTask());
        Assert.Equal(cts.Token, cancelled.CancellationToken);
        await WaitForLiveCountsAsync(start);
    }

    [Theory]
    [MemberData(nameof(Lenders))]
    public async Task CancelledDuringWork_ThrowsOperationCanceled(string lender)
    {
        LiveCounts start = LiveCounts.Now;
        await using var host = new Lender(lender);
        using ImportedFunction square = host.Square(SquareMode.Timer, OneHour);
        using var cts = new CancellationTokenSource();
        ValueTask<ulong> call = square.SquareAsync(7, cts.Token);
        Assert.False(call.IsCompleted, "a one-hour timer is pending");

        cts.Cancel();
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call.Within("the cancelled call"));
        Assert.Equal(cts.Token, cancelled.CancellationToken);
        await WaitForLiveCountsAsync(start);
    }

    [Theory]
    [MemberData(nameof(Lenders))]
    public async Task CallsDroppedWithoutAwaiting_ReleaseTheirFutures(string lender)
    {
        const int Calls = 20;
        LiveCounts start = LiveCounts.Now;
        Mishaps mishaps = Mishaps.Now;
        await using var host = new Lender(lender);
        using ImportedFunction ready = host.Square(SquareMode.Ready, TimeSpan.Zero);
        using ImportedFunction posted = host.Square(SquareMode.Posted, TimeSpan.Zero);
        using ImportedFunction slow = host.Square(SquareMode.Timer, OneHour);
        using var cts = new CancellationTokenSource();

        for (int i = 0; i < Calls; i++)
        {
            _ = ready.SquareAsync((ulong)i);             // finished already
            _ = posted.SquareAsync((ulong)i);            // finishes on its own
            _ = slow.SquareAsync((ulong)i, cts.Token);   // finishes when cancelled
        }
        Assert.True(FutureOperation.LiveFutures >= start.ImportedFutures + Calls, "the one-hour calls hold their futures");
        cts.Cancel();
        await WaitForLiveCountsAsync(start);
        Assert.Equal(mishaps, Mishaps.Now);
    }

    [Theory]
    [MemberData(nameof(Lenders))]
    public async Task ManyConcurrentCalls_EachCompletesOnceWithItsSquare(string lender)
    {
        const int Calls = 300;
        LiveCounts start = LiveCounts.Now;
        Mishaps mishaps = Mishaps.Now;
        await using var host = new Lender(lender);
        using ImportedFunction ready = host.Square(SquareMode.Ready, TimeSpan.Zero);
        using ImportedFunction posted = host.Square(SquareMode.Posted, TimeSpan.Zero);
        using ImportedFunction timer = host.Square(SquareMode.Timer, TimeSpan.FromMilliseconds(1));
        ImportedFunction[] functions = [ready, posted, timer];
        var completions = new int[Calls];

        Task<ulong>[] calls = Enumerable.Range(0, Calls)
            .Select(i => Task.Run(async () =>
            {
                ulong square = await functions[i % 3].SquareAsync((ulong)i);
                Interlocked.Increment(ref completions[i]);
                return square;
            }))
            .ToArray();
        ulong[] squares = await Task.WhenAll(calls).Within("every call");

        Assert.Equal(Enumerable.Range(0, Calls).Select(i => (ulong)i * (ulong)i), squares);
        Assert.All(completions, n => Assert.Equal(1, n));
        await WaitForLiveCountsAsync(start);
        Assert.Equal(mishaps, Mishaps.Now);
    }

    [Theory]
    [MemberData(nameof(Lenders))]
    public async Task Disposed_CallsThrowObjectDisposed_AndDisposeIsIdempotent(string lender)
    {
        await using var host = new Lender(lender);
        ImportedFunction square = host.Square(SquareMode.Ready, TimeSpan.Zero);
        Assert.False(square.IsDisposed);
        square.Dispose();
        square.Dispose();
        Assert.True(square.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => square.SquareAsync(2));
        Assert.Throws<ObjectDisposedException>(() => RustCalls.SumCallsAsync(square, 1, 1));
    }

    [Theory]
    [MemberData(nameof(Lenders))]
    public async Task LendersRuntimeShutDown_CallInFlightEndsWithShutdown_LaterCallsThrowAtTheCall(string lender)
    {
        var host = new Lender(lender);
        using ImportedFunction square = host.Square(SquareMode.Timer, OneHour);
        ValueTask<ulong> call = square.SquareAsync(7);
        Assert.False(call.IsCompleted, "a one-hour timer is pending");

        await host.ShutdownAsync().AsTask().Within("the shutdown");
        var inFlight = await Assert.ThrowsAsync<InteropException>(() => call.Within("the call in flight"));
        Assert.Equal(Status.Shutdown, inFlight.Status);
        Assert.Equal(Status.Shutdown, Assert.Throws<InteropException>(() => square.SquareAsync(7)).Status);
        await host.DisposeAsync();
    }

    public static TheoryData<string, string> LendersAndCallers => new()
    {
        { "Rust", "Rust" }, { "Rust", "C++" }, { "C++", "Rust" }, { "C++", "C++" },
    };

    [Theory]
    [MemberData(nameof(LendersAndCallers))]
    public async Task HandedToANativeSumCalls_IsTakenOver_AndLaterUsesThrowObjectDisposed(string lender, string caller)
    {
        LiveCounts start = LiveCounts.Now;
        await using var lending = new Lender(lender);
        await using var cpp = new CppRuntime(threads: 2);
        ImportedFunction square = lending.Square(SquareMode.Posted, TimeSpan.Zero);

        ValueTask<ulong> sum = caller == "Rust"
            ? RustCalls.SumCallsAsync(square, 1, 3)
            : CppCalls.SumCallsAsync(cpp, square, 1, 3);
        Assert.True(square.IsDisposed, "handing the function over disposes the instance");
        Assert.Equal(14UL, await sum.Within("the sum"));

        Assert.Throws<ObjectDisposedException>(() => square.SquareAsync(2));
        Assert.Throws<ObjectDisposedException>(() => RustCalls.SumCallsAsync(square, 1, 1));
        Assert.Throws<ObjectDisposedException>(() => CppCalls.SumCallsAsync(cpp, square, 1, 1));
        square.Dispose(); // nothing left to release: a no-op

        // The lender's error passes through the native caller with its prefix.
        using ImportedFunction other = lending.Square(SquareMode.Ready, TimeSpan.Zero);
        var error = await Assert.ThrowsAsync<RemoteCallException>(() => (caller == "Rust"
            ? RustCalls.SumCallsAsync(other, 1UL << 32, 1)
            : CppCalls.SumCallsAsync(cpp, other, 1UL << 32, 1)).Within("the overflowing sum"));
        Assert.Equal(400, error.Code);
        Assert.Equal("call 4294967296: overflow", error.RemoteMessage);
        await WaitForLiveCountsAsync(start);
    }

    [Theory]
    [MemberData(nameof(Lenders))]
    public async Task HandedOverWhileACallIsInFlight_ThatCallGoesOn(string lender)
    {
        LiveCounts start = LiveCounts.Now;
        await using var lending = new Lender(lender);
        ImportedFunction square = lending.Square(SquareMode.Timer, OneHour);
        using var cts = new CancellationTokenSource();
        ValueTask<ulong> inFlight = square.SquareAsync(5, cts.Token);
        Assert.False(inFlight.IsCompleted, "a one-hour timer is pending");

        // Zero calls: sum_calls finishes at once and releases the function it took over.
        Assert.Equal(0UL, await RustCalls.SumCallsAsync(square, 1, 0).Within("the empty sum"));
        Assert.True(square.IsDisposed);
        Assert.False(inFlight.IsCompleted, "the call started before the hand-over keeps its future");

        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => inFlight.Within("the call in flight"));
        await WaitForLiveCountsAsync(start);
    }

    [Fact]
    public async Task InvalidArguments_ThrowAtTheCall()
    {
        await using var rust = new RustRuntime();
        await using var cpp = new CppRuntime();
        Assert.Throws<ArgumentOutOfRangeException>(() => RustCalls.SquareFunction(rust, (SquareMode)3, TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => CppCalls.SquareFunction(cpp, (SquareMode)(-1), TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => RustCalls.SquareFunction(rust, SquareMode.Timer, TimeSpan.FromMilliseconds(-1)));
        Assert.Throws<ArgumentNullException>(() => CppCalls.SquareFunction(null!, SquareMode.Ready, TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => ExportedFunction.Square((SquareMode)7, TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => ExportedFunction.Square(SquareMode.Timer, TimeSpan.FromTicks(-1)));
        Assert.Throws<ArgumentNullException>(() => RustCalls.SumCallsAsync(null!, 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(
            () => RustCalls.SumCallsAsync(ExportedFunction.Square(SquareMode.Ready, TimeSpan.Zero), 1, -1));
        Assert.Throws<ArgumentNullException>(() => CppCalls.SumCallsAsync(cpp, null!, 1, 1));
        Assert.Throws<ArgumentNullException>(() => new ExportedFunction("x", null!));
        Assert.Throws<ArgumentException>(() => new ExportedFunction("", (m, _) => new ValueTask<Message>(m)));
    }

    /// <summary>A native runtime that lends "square".</summary>
    private sealed class Lender(string name, int threads = 2) : IAsyncDisposable
    {
        private readonly IBridgeRuntime _runtime = ImportTestSupport.CreateNative(name, threads);

        public IBridgeRuntime Runtime => _runtime;

        public ImportedFunction Square(SquareMode mode, TimeSpan delay) => _runtime switch
        {
            RustRuntime rust => RustCalls.SquareFunction(rust, mode, delay),
            CppRuntime cpp => CppCalls.SquareFunction(cpp, mode, delay),
            _ => throw new InvalidOperationException(name),
        };

        public ValueTask ShutdownAsync() => _runtime.ShutdownAsync();

        public ValueTask DisposeAsync() => _runtime.DisposeAsync();
    }
}
