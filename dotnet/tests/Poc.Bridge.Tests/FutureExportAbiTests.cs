using System.Text;
using Poc.Bridge.Futures;
using Poc.Bridge.Interop;
using Xunit;
using static Poc.Bridge.Tests.FutureExportTestSupport;

namespace Poc.Bridge.Tests;

/// <summary>
/// The .NET future exporter (<see cref="ExportedFuture"/>) and the lent-function context
/// (<see cref="LentFunctions"/>) driven through their raw vtables from C#, the way Rust and C++ call
/// them: statuses, exactly-once wakes, owed wakes, misuse answered INVALID, containment.
/// </summary>
[Collection(FutureCallsCollection.Name)]
public sealed class FutureExportAbiTests
{
    private static readonly byte[] Hello = "hello"u8.ToArray();

    [Fact]
    public async Task CompletedAtExport_FirstPollDeliversOk_WithNoWake_ThenInvalid()
    {
        LiveCounts start = LiveCounts.Now;
        long wakes = ExportedFuture.WakesFired;
        poc_future future = ExportedFuture.Export(new ValueTask<Message>(new Message(5, Hello)), cts: null);
        Assert.Equal(0xD3UL, future.handle >> 56);
        Assert.Equal((NativeMethods.AbiVersion, Raw.VTableSize), Raw.VTableHeader(future));

        var probe = new FutureProbe();
        Assert.Equal((int)Status.Ok, probe.Poll(future));
        Assert.Equal(1, probe.Delivers);
        Assert.Equal((int)Status.Ok, probe.DeliveredStatus);
        Assert.Equal(5UL, probe.Delivered.Id);
        Assert.Equal(Hello, probe.Delivered.Payload.ToArray());

        Assert.Equal((int)Status.Invalid, probe.Poll(future)); // polled again after it finished
        Assert.Equal(1, probe.Delivers);
        Assert.Equal((int)Status.Ok, Raw.Cancel(future)); // a request, no effect now
        Assert.Equal((int)Status.Ok, Raw.Release(future));
        Assert.Equal(0, probe.Wakes);
        Assert.Equal(wakes, ExportedFuture.WakesFired);
        await WaitForLiveCountsAsync(start);
    }

    [Fact]
    public async Task Pending_ThenCompletedOnADedicatedThread_WakesOnceFromThatThread()
    {
        LiveCounts start = LiveCounts.Now;
        var result = new TaskCompletionSource<Message>(); // synchronous continuations: the wake runs in SetResult
        poc_future future = ExportedFuture.Export(new ValueTask<Message>(result.Task), cts: null);
        var probe = new FutureProbe();
        Assert.Equal((int)Status.Pending, probe.Poll(future));
        Assert.Equal(0, probe.Wakes);

        int completerThread = 0;
        long wakesOnCompleter = -1;
        await RunOnDedicatedThread(() =>
        {
            completerThread = Environment.CurrentManagedThreadId;
            long before = ExportedFuture.WakesFiredOnThisThread;
            result.SetResult(new Message(9));
            wakesOnCompleter = ExportedFuture.WakesFiredOnThisThread - before;
        }, "completer").Within("the completer thread");

        Assert.Equal(1, probe.Wakes);
        Assert.Equal(1, wakesOnCompleter);
        Assert.Equal(completerThread, probe.LastWakeThread);
        Assert.Equal((int)Status.Ok, probe.Poll(future));
        Assert.Equal(9UL, probe.Delivered.Id);
        Assert.Equal((int)Status.Ok, Raw.Release(future));
        Assert.Equal(1, probe.Wakes);
        await WaitForLiveCountsAsync(start);
    }

    [Fact]
    public async Task PollRacingWithCompletion_EveryPendingGetsExactlyOneWake()
    {
        const int Rounds = 2000;
        LiveCounts start = LiveCounts.Now;
        int pendings = 0, immediate = 0;
        using var barrier = new Barrier(2);
        var probes = new FutureProbe[Rounds];
        var results = new TaskCompletionSource<Message>[Rounds];
        var futures = new poc_future[Rounds];
        for (int i = 0; i < Rounds; i++)
        {
            probes[i] = new FutureProbe();
            results[i] = new TaskCompletionSource<Message>();
            futures[i] = ExportedFuture.Export(new ValueTask<Message>(results[i].Task), cts: null);
        }
        var statuses = new int[Rounds];

        Task completer = RunOnDedicatedThread(() =>
        {
            for (int i = 0; i < Rounds; i++)
            {
                barrier.SignalAndWait(Limit);
                results[i].SetResult(new Message((ulong)i));
            }
        }, "completer");
        Task poller = RunOnDedicatedThread(() =>
        {
            for (int i = 0; i < Rounds; i++)
            {
                barrier.SignalAndWait(Limit);
                statuses[i] = probes[i].Poll(futures[i]);
            }
        }, "poller");
        await Task.WhenAll(completer, poller).Within("the racing threads");

        for (int i = 0; i < Rounds; i++)
        {
            if (statuses[i] == (int)Status.Pending)
            {
                pendings++;
                await WaitUntilAsync(() => probes[i].Wakes >= 1, () => $"round {i}: PENDING without a wake");
                Assert.Equal((int)Status.Ok, probes[i].Poll(futures[i]));
            }
            else
            {
                immediate++;
                Assert.Equal((int)Status.Ok, statuses[i]);
            }
            Assert.Equal((ulong)i, probes[i].Delivered.Id);
            Assert.Equal(1, probes[i].Delivers);
            Assert.Equal((int)Status.Ok, Raw.Release(futures[i]));
        }
        // Exactly one wake per PENDING, none for a poll that delivered at once.
        for (int i = 0; i < Rounds; i++)
            Assert.Equal(statuses[i] == (int)Status.Pending ? 1 : 0, probes[i].Wakes);
        Assert.Equal(Rounds, pendings + immediate);
        await WaitForLiveCountsAsync(start);
    }

    [Fact]
    public async Task PolledAgainBeforeTheWake_TheOwedWakeFiresAtOnce_AndReleaseFiresTheLast()
    {
        LiveCounts start = LiveCounts.Now;
        var result = new TaskCompletionSource<Message>();
        poc_future future = ExportedFuture.Export(new ValueTask<Message>(result.Task), cts: null);
        var first = new FutureProbe();
        var second = new FutureProbe();

        Assert.Equal((int)Status.Pending, first.Poll(future));
        Assert.Equal((int)Status.Pending, second.Poll(future));
        Assert.Equal(1, first.Wakes); // owed by the first PENDING, fired when the new poll started
        Assert.Equal(Environment.CurrentManagedThreadId, first.LastWakeThread);
        Assert.Equal(0, second.Wakes);

        Assert.Equal((int)Status.Ok, Raw.Release(future));
        Assert.Equal(1, second.Wakes); // release fires the wake it owes
        Assert.Equal(1, first.Wakes);

        result.SetResult(new Message(1)); // completes after release: nobody is owed a wake any more
        Assert.Equal(1, second.Wakes);
        Assert.Equal(0, first.Delivers + second.Delivers);
        await WaitForLiveCountsAsync(start);
    }

    [Fact]
    public async Task CancelWhilePending_FiresTheOwedWake_FiresTheCallToken_AndPollsAnswerCancelled()
    {
        LiveCounts start = LiveCounts.Now;
        var controlled = new ControlledFunction();
        poc_future future = controlled.Function.Start(new Message(3));
        ControlledFunction.Call call = await controlled.NextAsync("the body");
        var probe = new FutureProbe();
        Assert.Equal((int)Status.Pending, probe.Poll(future));

        Assert.Equal((int)Status.Ok, Raw.Cancel(future));
        Assert.Equal(1, probe.Wakes);
        await call.TokenFired.Task.Within("the body's token to fire");
        Assert.Equal((int)Status.Cancelled, probe.Poll(future));
        Assert.Equal((int)Status.Cancelled, probe.Poll(future));
        Assert.Equal((int)Status.Ok, Raw.Cancel(future)); // idempotent
        Assert.Equal(0, probe.Delivers);
        Assert.Equal(1, probe.Wakes);
        Assert.Equal((int)Status.Ok, Raw.Release(future));
        Assert.Equal(1, controlled.TokensFired);
        await WaitForLiveCountsAsync(start);
    }

    [Fact]
    public async Task CancelBeforeTheFirstPoll_FirstPollAnswersCancelled_WithNoWake()
    {
        LiveCounts start = LiveCounts.Now;
        var controlled = new ControlledFunction();
        poc_future future = controlled.Function.Start(new Message(3));
        ControlledFunction.Call call = await controlled.NextAsync("the body");
        Assert.Equal((int)Status.Ok, Raw.Cancel(future));
        var probe = new FutureProbe();
        Assert.Equal((int)Status.Cancelled, probe.Poll(future));
        await call.TokenFired.Task.Within("the body's token to fire");
        Assert.Equal(0, probe.Wakes);
        Assert.Equal((int)Status.Ok, Raw.Release(future));
        await WaitForLiveCountsAsync(start);
    }

    [Fact]
    public async Task ReleaseWhilePending_FiresTheOwedWake_CancelsTheCall_AndTheHandleIsStale()
    {
        LiveCounts start = LiveCounts.Now;
        var controlled = new ControlledFunction();
        poc_future future = controlled.Function.Start(new Message(4));
        ControlledFunction.Call call = await controlled.NextAsync("the body");
        var probe = new FutureProbe();
        Assert.Equal((int)Status.Pending, probe.Poll(future));

        Assert.Equal((int)Status.Ok, Raw.Release(future));
        Assert.Equal(1, probe.Wakes);
        await call.TokenFired.Task.Within("the body's token to fire");
        Assert.Equal((int)Status.Invalid, probe.Poll(future));
        Assert.Equal((int)Status.Invalid, Raw.Cancel(future));
        Assert.Equal((int)Status.Invalid, Raw.Release(future)); // double release
        Assert.Equal(1, probe.Wakes);
        await WaitForLiveCountsAsync(start);
    }

    public static TheoryData<ulong> ForgedOrForeignHandles => new()
    {
        0UL,
        ulong.MaxValue,
        0x46_000001_00000001UL, // the Rust future table's tag
        0xD1_000001_00000001UL, // a .NET sender port's tag
        0xD4_000001_00000001UL, // a .NET lent-function context's tag
        0xD3_000000_00000001UL, // our tag, generation 0 (never issued)
        0xD3_000001_00000000UL, // our tag, index 0 (never issued)
        0xD3_FFFFFF_7FFFFFFFUL, // our tag, a slot that does not exist
    };

    [Theory]
    [MemberData(nameof(ForgedOrForeignHandles))]
    public void ForgedOrForeignHandle_EveryFunctionAnswersInvalid(ulong handle)
    {
        var probe = new FutureProbe();
        poc_future forged = Raw.Forge(handle);
        Assert.Equal((int)Status.Invalid, probe.Poll(forged));
        Assert.Equal((int)Status.Invalid, Raw.Cancel(forged));
        Assert.Equal((int)Status.Invalid, Raw.Release(forged));
        Assert.Equal(0, probe.Wakes + probe.Delivers);
    }

    [Fact]
    public async Task StaleGenerationOfALiveSlot_AnswersInvalid_AndTheLiveFutureIsUntouched()
    {
        LiveCounts start = LiveCounts.Now;
        poc_future future = ExportedFuture.Export(new ValueTask<Message>(new Message(2)), cts: null);
        const ulong generationOne = 1UL << 32;
        var probe = new FutureProbe();
        foreach (ulong stale in new[] { unchecked(future.handle + generationOne), unchecked(future.handle - generationOne) })
        {
            poc_future other = future with { handle = stale };
            Assert.Equal((int)Status.Invalid, probe.Poll(other));
            Assert.Equal((int)Status.Invalid, Raw.Cancel(other));
            Assert.Equal((int)Status.Invalid, Raw.Release(other));
        }
        Assert.Equal((int)Status.Ok, probe.Poll(future));
        Assert.Equal(2UL, probe.Delivered.Id);
        Assert.Equal((int)Status.Ok, Raw.Release(future));
        await WaitForLiveCountsAsync(start);
    }

    [Fact]
    public async Task NullWakeOrDeliver_AnswersInvalid_AndChangesNothing()
    {
        LiveCounts start = LiveCounts.Now;
        poc_future future = ExportedFuture.Export(new ValueTask<Message>(new Message(8)), cts: null);
        var probe = new FutureProbe();
        Assert.Equal((int)Status.Invalid, Raw.PollWithoutWake(future, probe));
        Assert.Equal((int)Status.Invalid, Raw.PollWithoutDeliver(future, probe));
        Assert.Equal(0, probe.Delivers);
        Assert.Equal((int)Status.Ok, probe.Poll(future)); // the value is still there
        Assert.Equal(8UL, probe.Delivered.Id);
        Assert.Equal((int)Status.Ok, Raw.Release(future));
        await WaitForLiveCountsAsync(start);
    }

    public static TheoryData<string, int, ulong, string> Outcomes => new()
    {
        { "remote error", (int)Status.Error, 418UL, "I'm a teapot ☕ é" },
        { "remote error, negative code", (int)Status.Error, unchecked((ulong)-5L), "minus five" },
        { "exception", (int)Status.Panic, 0UL, "System.InvalidOperationException: broken ☕" },
        { "exception thrown before the body returned", (int)Status.Panic, 0UL, "System.ArgumentException: at once" },
        { "cancellation nobody asked for", (int)Status.Panic, 0UL, "System.OperationCanceledException: not ours" },
    };

    [Theory]
    [MemberData(nameof(Outcomes))]
    public async Task BodyFailures_AreDeliveredAsErrorOrPanic(string failure, int status, ulong id, string text)
    {
        LiveCounts start = LiveCounts.Now;
        var function = new ExportedFunction("failing", (_, _) => failure switch
        {
            "remote error" => ValueTask.FromException<Message>(new RemoteCallException("failing", 418, "I'm a teapot ☕ é")),
            "remote error, negative code" => ValueTask.FromException<Message>(new RemoteCallException("failing", -5, "minus five")),
            "exception" => ThrowLater(new InvalidOperationException("broken ☕")),
            "exception thrown before the body returned" => throw new ArgumentException("at once"),
            _ => ThrowLater(new OperationCanceledException("not ours")),
        });
        poc_future future = function.Start(new Message(1));
        var probe = new FutureProbe();
        int first = probe.Poll(future);
        if (first == (int)Status.Pending)
        {
            await probe.WaitForWakeAsync("the failing body's wake");
            first = probe.Poll(future);
        }
        Assert.Equal(status, first);
        Assert.Equal(status, probe.DeliveredStatus);
        Assert.Equal(id, probe.Delivered.Id);
        Assert.Equal(text, Encoding.UTF8.GetString(probe.Delivered.Payload.Span));
        Assert.Equal((int)Status.Invalid, probe.Poll(future));
        Assert.Equal((int)Status.Ok, Raw.Release(future));
        await WaitForLiveCountsAsync(start);

        static async ValueTask<Message> ThrowLater(Exception e)
        {
            await Task.Yield();
            throw e;
        }
    }

    [Fact]
    public async Task ExceptionInsideAVTableFunction_IsContainedAsPanic_AndCounted()
    {
        LiveCounts start = LiveCounts.Now;
        long contained = FutureExportDiagnostics.ContainedExceptions;
        poc_future future = ExportedFuture.Export(new ValueTask<Message>(new Message(6)), cts: null);
        var probe = new FutureProbe();

        ExportedFuture.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, probe.Poll(future));
        ExportedFuture.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, Raw.Cancel(future));
        ExportedFuture.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, Raw.Release(future));
        Assert.Equal(contained + 3, FutureExportDiagnostics.ContainedExceptions);

        // The faults happened before anything was done: the future is intact.
        Assert.Equal((int)Status.Ok, probe.Poll(future));
        Assert.Equal(6UL, probe.Delivered.Id);
        Assert.Equal((int)Status.Ok, Raw.Release(future));

        poc_async_fn lent = ExportedFunction.Square(SquareMode.Ready, TimeSpan.Zero).Lend();
        LentFunctions.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, Raw.Call(lent, 3, out _));
        Assert.Equal(contained + 4, FutureExportDiagnostics.ContainedExceptions);
        Raw.Release(lent);
        await WaitForLiveCountsAsync(start);
    }

    [Fact]
    public async Task LentFunction_RawCallsAndRelease_MisuseIsInvalidOrCounted()
    {
        LiveCounts start = LiveCounts.Now;
        long strays = FutureExportDiagnostics.StrayReleases;
        ExportedFunction square = ExportedFunction.Square(SquareMode.Ready, TimeSpan.Zero);
        poc_async_fn first = square.Lend();
        poc_async_fn second = square.Lend();
        Assert.NotEqual(Raw.Context(first), Raw.Context(second)); // a fresh context per lend
        Assert.Equal(0xD4UL, Raw.Context(first) >> 56);
        Assert.Equal(start.LentContexts + 2, LentFunctions.LiveContexts);

        Assert.Equal((int)Status.Ok, Raw.Call(first, 12, out poc_future future));
        var probe = new FutureProbe();
        Assert.Equal((int)Status.Ok, probe.Poll(future)); // READY: the first poll answers
        Assert.Equal(144UL, probe.Delivered.Id);
        Assert.Equal((int)Status.Ok, Raw.Release(future));

        Assert.Equal((int)Status.Invalid, Raw.CallMisused(first, nullArgument: true, nullOut: false, lyingView: false));
        Assert.Equal((int)Status.Invalid, Raw.CallMisused(first, nullArgument: false, nullOut: true, lyingView: false));
        Assert.Equal((int)Status.Invalid, Raw.CallMisused(first, nullArgument: false, nullOut: false, lyingView: true));
        Assert.Equal((int)Status.Invalid, Raw.Call(Raw.WithContext(first, 0xD4_000000_00000001UL), 12, out _)); // forged context

        Raw.Release(first);
        Assert.Equal(start.LentContexts + 1, LentFunctions.LiveContexts);
        Assert.Equal((int)Status.Invalid, Raw.Call(first, 12, out _)); // released context
        Raw.Release(first);                                            // released twice
        Assert.Equal(strays + 1, FutureExportDiagnostics.StrayReleases);

        Assert.Equal((int)Status.Ok, Raw.Call(second, 12, out future)); // the other lend still works
        Assert.Equal((int)Status.Ok, Raw.Release(future));             // released unpolled
        Raw.Release(second);
        await WaitForLiveCountsAsync(start);
    }
}

/// <summary>Raw vtable calls (outside the async tests: no pointers in async methods).</summary>
internal static unsafe class Raw
{
    public static uint VTableSize => (uint)sizeof(poc_future_vtable);

    public static (uint Abi, uint Size) VTableHeader(poc_future future) => (future.vtable->abi_version, future.vtable->size);

    public static poc_future Forge(ulong handle) => new() { handle = handle, vtable = ExportedFuture.VTable };

    public static int Cancel(poc_future future) => future.vtable->cancel(future.handle);

    public static int Release(poc_future future) => future.vtable->release(future.handle);

    public static int PollWithoutWake(poc_future future, FutureProbe probe) =>
        future.vtable->poll(future.handle, null, FutureProbe.DeliverFunction, (void*)probe.Token);

    public static int PollWithoutDeliver(poc_future future, FutureProbe probe) =>
        future.vtable->poll(future.handle, FutureProbe.WakeFunction, null, (void*)probe.Token);

    public static ulong Context(poc_async_fn function) => (ulong)function.context;

    public static poc_async_fn WithContext(poc_async_fn function, ulong context) => function with { context = (void*)context };

    public static int Call(poc_async_fn function, ulong x, out poc_future future)
    {
        var argument = new poc_message_view { id = x };
        poc_future result = default;
        int status = function.call(function.context, &argument, &result);
        future = result;
        return status;
    }

    public static int CallMisused(poc_async_fn function, bool nullArgument, bool nullOut, bool lyingView)
    {
        var argument = new poc_message_view { id = 1, data = null, len = lyingView ? 4u : 0u };
        poc_future result = default;
        return function.call(function.context, nullArgument ? null : &argument, nullOut ? null : &result);
    }

    public static void Release(poc_async_fn function) => function.release(function.context);
}
