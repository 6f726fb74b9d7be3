using Poc.Bridge.Futures;
using Xunit;
using static Poc.Bridge.Tests.FutureExportTestSupport;

namespace Poc.Bridge.Tests;

/// <summary>
/// A C# async method lent as an <see cref="ExportedFunction"/> and awaited by each runtime:
/// "C#" — a C# loop over <see cref="ImportedFunction.CallAsync"/> of the lent <c>poc_async_fn</c>
/// (FutureOperation awaiting the C# exporter through the ABI); "Rust" —
/// <see cref="RustCalls.SumCallsAsync"/> (a Rust async fn that <c>.await</c>s each call); "C++" —
/// <see cref="CppCalls.SumCallsAsync"/> (a C++20 coroutine that <c>co_await</c>s each call). Each
/// caller sums the values of <c>count</c> calls with arguments <c>first, first + 1, …</c>.
/// </summary>
[Collection(FutureCallsCollection.Name)]
public sealed class CallsIntoDotNetTests
{
    public static TheoryData<string> Callers => new() { "C#", "Rust", "C++" };

    [Fact]
    public async Task ImportThroughAbi_EveryCallCrossesTheBridge_AndDisposeReleasesTheLentFunctionOnce()
    {
        LiveCounts start = LiveCounts.Now;
        long exported = ExportedFuture.LiveFutures;
        int invocations = 0;
        var square = new ExportedFunction("counted square", async (argument, _) =>
        {
            Interlocked.Increment(ref invocations);
            await Task.Yield(); // pending at the first poll: the answer comes through the wake
            return new Message(argument.Id * argument.Id);
        });

        ImportedFunction imported = square.ImportThroughAbi();
        Assert.Equal(start.LentContexts + 1, LentFunctions.LiveContexts); // lent through the ABI
        Assert.Equal(49UL, await imported.SquareAsync(7).Within("the first call"));
        Assert.Equal(121UL, await imported.SquareAsync(11).Within("the second call"));
        Assert.Equal(2, invocations);

        imported.Dispose();
        Assert.True(imported.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => { _ = imported.SquareAsync(3); });
        await WaitForLiveCountsAsync(start); // the lent function released, each exported future too
        Assert.Equal(exported, ExportedFuture.LiveFutures);
        Assert.Equal(2, invocations);
    }

    [Theory]
    [MemberData(nameof(Callers))]
    public async Task ReadyBody_ValueArrivesWithoutAWake(string caller)
    {
        LiveCounts start = LiveCounts.Now;
        await using var host = new Caller(caller);
        ExportedFunction square = ExportedFunction.Square(SquareMode.Ready, TimeSpan.Zero);
        long wakes = ExportedFuture.WakesFired;

        ValueTask<ulong> sum = host.Sum(square, first: 1, count: 3);
        if (caller != "C++")
        {
            // Rust's sum_calls runs on the polling thread and every C# call is ready at its first
            // poll: the whole chain finished before the call returned. (The C++ coroutine runs on
            // its io_context, so its ValueTask completes later.)
            Assert.True(sum.IsCompletedSuccessfully, $"{caller}: the sum over ready calls did not complete synchronously");
        }
        Assert.Equal(14UL, await sum.Within("the sum"));
        Assert.Equal(wakes, ExportedFuture.WakesFired);
        await WaitForLiveCountsAsync(start);
    }

    [Theory]
    [MemberData(nameof(Callers))]
    public async Task PendingBody_CompletedOnADedicatedThread_TheWakeComesFromThatThread(string caller)
    {
        const int Count = 3;
        LiveCounts start = LiveCounts.Now;
        await using var host = new Caller(caller);
        var controlled = new ControlledFunction("square-by-hand");

        ValueTask<ulong> sum = host.Sum(controlled.Function, first: 3, count: Count);
        Assert.False(sum.IsCompleted, "nothing completed the first call yet");

        var wakesOnCompleter = new long[Count];
        int completerThread = 0;
        var bodyThreads = new int[Count];
        Task completer = RunOnDedicatedThread(() =>
        {
            completerThread = Environment.CurrentManagedThreadId;
            for (int i = 0; i < Count; i++)
            {
                ControlledFunction.Call call = controlled.Next($"call {i}");
                bodyThreads[i] = call.Thread;
                // The caller's first poll of this call answered PENDING (calls are sequential, so
                // this call's future is the only one that can): a wake is owed now.
                SpinUntil(() => ExportedFuture.PendingAnswers > call.PendingAnswersAtStart, $"the first poll of call {i}");
                long before = ExportedFuture.WakesFiredOnThisThread;
                call.Result.SetResult(new Message(call.X * call.X));
                wakesOnCompleter[i] = ExportedFuture.WakesFiredOnThisThread - before;
            }
        }, "completer");
        await completer.Within("the completer thread");

        Assert.Equal(9UL + 16 + 25, await sum.Within("the sum"));
        Assert.Equal(new long[] { 1, 1, 1 }, wakesOnCompleter);
        Assert.DoesNotContain(completerThread, bodyThreads);
        Assert.Equal(Count, controlled.Invocations);
        Assert.Equal(0, controlled.TokensFired);
        await WaitForLiveCountsAsync(start);
    }

    [Theory]
    [MemberData(nameof(Callers))]
    public async Task RemoteCallException_CodeAndMessageArriveIntact(string caller)
    {
        LiveCounts start = LiveCounts.Now;
        await using var host = new Caller(caller);
        ExportedFunction square = ExportedFunction.Square(SquareMode.Posted, TimeSpan.Zero);

        // 2^32 - 1 squares fine; 2^32 overflows: the second call fails with the body's error.
        var error = await Assert.ThrowsAsync<RemoteCallException>(
            () => host.Sum(square, first: uint.MaxValue, count: 3).Within("the overflowing sum"));
        Assert.Equal(400, error.Code);
        Assert.Equal(host.Expected(4294967296UL, "overflow"), error.RemoteMessage);
        Assert.Equal(host.CallName("square"), error.Call);

        var teapot = new ExportedFunction("teapot", static async (_, _) =>
        {
            await Task.Yield();
            throw new RemoteCallException("teapot", 418, "I'm a teapot ☕ — é");
        });
        var unicode = await Assert.ThrowsAsync<RemoteCallException>(() => host.Sum(teapot, 77, 1).Within("the teapot"));
        Assert.Equal(418, unicode.Code);
        Assert.Equal(host.Expected(77, "I'm a teapot ☕ — é"), unicode.RemoteMessage);
        await WaitForLiveCountsAsync(start);
    }

    [Theory]
    [MemberData(nameof(Callers))]
    public async Task ExceptionInTheBody_IsContainedAsPanic_AndTheFunctionStillWorks(string caller)
    {
        LiveCounts start = LiveCounts.Now;
        Mishaps mishaps = Mishaps.Now;
        await using var host = new Caller(caller);
        foreach (SquareMode mode in new[] { SquareMode.Ready, SquareMode.Posted })
        {
            ExportedFunction square = ExportedFunction.Square(mode, TimeSpan.Zero);
            var panic = await Assert.ThrowsAsync<InteropException>(
                () => host.Sum(square, first: ulong.MaxValue, count: 1).Within("the panicking sum"));
            Assert.Equal(Status.Panic, panic.Status);
            Assert.Contains(host.Expected(ulong.MaxValue,
                "System.InvalidOperationException: square(18446744073709551615) fails on purpose"), panic.Message, StringComparison.Ordinal);

            // The same function, lent again, works.
            Assert.Equal(SumOfSquares(5, 4), await host.Sum(square, 5, 4).Within("the sum after the panic"));
        }
        Assert.Equal(mishaps, Mishaps.Now); // a body's exception is an outcome, not a boundary mishap
        await WaitForLiveCountsAsync(start);
    }

    [Theory]
    [MemberData(nameof(Callers))]
    public async Task CancelledBeforeTheFirstPoll_EndsCancelled_AndEveryStartedBodySawItsToken(string caller)
    {
        LiveCounts start = LiveCounts.Now;
        await using var host = new Caller(caller);
        var controlled = new ControlledFunction();
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => host.Sum(controlled.Function, 1, 2, cts.Token).Within("the cancelled sum"));
        Assert.Equal(cts.Token, cancelled.CancellationToken);
        switch (caller)
        {
            case "C#": // the call started, then its future was cancelled before its first poll
                Assert.Equal(1, controlled.Invocations);
                break;
            case "Rust": // sum_calls was cancelled before its first poll: it never called
                Assert.Equal(0, controlled.Invocations);
                break;
            // C++: the coroutine may have started its first call before the cancel reached it.
        }
        await WaitUntilAsync(() => controlled.TokensFired == controlled.Invocations,
            () => $"{controlled.Invocations} bodies started, {controlled.TokensFired} saw their token fire");
        await WaitForLiveCountsAsync(start);
    }

    [Theory]
    [MemberData(nameof(Callers))]
    public async Task CancelledDuringWork_TheBodysTokenFires_AndTheCallerEndsCancelled(string caller)
    {
        LiveCounts start = LiveCounts.Now;
        await using var host = new Caller(caller);
        var controlled = new ControlledFunction();
        using var cts = new CancellationTokenSource();

        ValueTask<ulong> sum = host.Sum(controlled.Function, 10, 5, cts.Token);
        ControlledFunction.Call first = await controlled.NextAsync("the first call");
        first.Result.SetResult(new Message(100)); // the first call finishes, the second one runs
        ControlledFunction.Call second = await controlled.NextAsync("the second call");
        Assert.Equal(11UL, second.X);
        Assert.False(second.TokenFired.Task.IsCompleted);

        cts.Cancel();
        await second.TokenFired.Task.Within("the second body's token to fire");
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sum.Within("the cancelled sum"));
        Assert.Equal(cts.Token, cancelled.CancellationToken);
        Assert.Equal(2, controlled.Invocations); // nothing ran after the cancel
        Assert.Equal(1, controlled.TokensFired);
        await WaitForLiveCountsAsync(start);
    }

    [Theory]
    [MemberData(nameof(Callers))]
    public async Task CallsDroppedWithoutAwaiting_ReleaseEverything_WhetherCancelledOrFinished(string caller)
    {
        const int Sums = 10;
        LiveCounts start = LiveCounts.Now;
        Mishaps mishaps = Mishaps.Now;
        await using var host = new Caller(caller);
        var controlled = new ControlledFunction();
        using var cts = new CancellationTokenSource();

        for (int i = 0; i < Sums; i++)
            _ = host.Sum(controlled.Function, (ulong)i * 10, 1, i % 2 == 0 ? cts.Token : default); // dropped
        var calls = new List<ControlledFunction.Call>();
        for (int i = 0; i < Sums; i++) calls.Add(await controlled.NextAsync($"body {i}"));
        Assert.True(LiveCounts.Now.ExportedFutures >= start.ExportedFutures + Sums, "every call's future is alive");

        cts.Cancel(); // ends the even sums (their bodies' tokens fire)
        foreach (ControlledFunction.Call call in calls.Where(c => c.X / 10 % 2 == 1))
            call.Result.SetResult(new Message(call.X)); // the odd ones finish normally

        await WaitForLiveCountsAsync(start);
        Assert.Equal(Sums, controlled.Invocations);
        Assert.Equal(Sums / 2, controlled.TokensFired);
        Assert.All(calls.Where(c => c.X / 10 % 2 == 0), c => Assert.True(c.TokenFired.Task.IsCompleted, $"call {c.X}: token not fired"));
        Assert.Equal(mishaps, Mishaps.Now);
    }

    [Theory]
    [MemberData(nameof(Callers))]
    public async Task ManyConcurrentCalls_EachBodyRunsOnce_AndEachCallCompletesOnce(string caller)
    {
        const int Sums = 40;
        const int Count = 10;
        LiveCounts start = LiveCounts.Now;
        Mishaps mishaps = Mishaps.Now;
        await using var host = new Caller(caller);
        var invocations = new int[Sums * Count];
        var completions = new int[Sums];
        // Three ways a body finishes: ready at once, on the thread pool, after an await.
        var function = new ExportedFunction("counting-square", (argument, token) =>
        {
            Interlocked.Increment(ref invocations[argument.Id]);
            ulong x = argument.Id;
            return (x % 3) switch
            {
                0 => new ValueTask<Message>(new Message(x * x)),
                1 => new ValueTask<Message>(Task.Run(() => new Message(x * x), token)),
                _ => YieldThenSquare(x),
            };
        });

        Task<ulong>[] sums = Enumerable.Range(0, Sums)
            .Select(i => Task.Run(async () =>
            {
                ulong sum = await host.Sum(function, (ulong)(i * Count), Count);
                Interlocked.Increment(ref completions[i]);
                return sum;
            }))
            .ToArray();
        ulong[] results = await Task.WhenAll(sums).Within("every sum");

        for (int i = 0; i < Sums; i++) Assert.Equal(SumOfSquares((ulong)(i * Count), Count), results[i]);
        Assert.All(invocations, n => Assert.Equal(1, n));
        Assert.All(completions, n => Assert.Equal(1, n));
        await WaitForLiveCountsAsync(start);
        Assert.Equal(mishaps, Mishaps.Now);

        static async ValueTask<Message> YieldThenSquare(ulong x)
        {
            await Task.Yield();
            return new Message(x * x);
        }
    }

    /// <summary>One of the three callers, with the C++ runtime it needs.</summary>
    private sealed class Caller(string name) : IAsyncDisposable
    {
        private readonly CppRuntime? _cpp = name == "C++" ? new CppRuntime(threads: 2) : null;

        /// <summary>Σ of the values of count calls of <paramref name="function"/> from <paramref name="first"/>.</summary>
        public ValueTask<ulong> Sum(AsyncFunction function, ulong first, int count, CancellationToken token = default) => name switch
        {
            "C#" => SumInCSharp(function, first, count, token),
            "Rust" => RustCalls.SumCallsAsync(function, first, count, token),
            _ => CppCalls.SumCallsAsync(_cpp!, function, first, count, token),
        };

        /// <summary>The error text as the caller reports it: the native sum_calls prefix "call &lt;x&gt;: ".</summary>
        public string Expected(ulong x, string message) => name == "C#" ? message : $"call {x}: {message}";

        /// <summary>The call an exception names: the C# loop awaits the function itself.</summary>
        public string CallName(string function) => name == "C#" ? function : "sum_calls";

        public async ValueTask DisposeAsync()
        {
            if (_cpp is not null) await _cpp.DisposeAsync();
        }

        /// <summary>The C# caller: the lent function imported back, awaited one call after the other.</summary>
        private static async ValueTask<ulong> SumInCSharp(AsyncFunction function, ulong first, int count, CancellationToken token)
        {
            using var imported = new ImportedFunction(function.Lend(), function.Name);
            ulong sum = 0;
            for (int i = 0; i < count; i++)
                sum = unchecked(sum + await imported.SquareAsync(first + (ulong)i, token));
            return sum;
        }
    }
}
