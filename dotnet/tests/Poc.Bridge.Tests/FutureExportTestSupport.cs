using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Poc.Bridge.Futures;
using Poc.Bridge.Import;
using Poc.Bridge.Interop;
using Xunit;

namespace Poc.Bridge.Tests;

/// <summary>Helpers of the tests of the .NET future exporter and of lent functions: bounded waits,
/// dedicated threads, the live counters, and a body whose calls the test completes by hand.</summary>
internal static class FutureExportTestSupport
{
    /// <summary>How long any single wait may take before the test fails.</summary>
    internal static readonly TimeSpan Limit = ImportTestSupport.Limit;

    /// <summary>The process-wide counts that must return to where a test found them.</summary>
    internal readonly record struct LiveCounts(long ExportedFutures, long LentContexts, long ImportedFutures)
    {
        public static LiveCounts Now => new(ExportedFuture.LiveFutures, LentFunctions.LiveContexts, FutureOperation.LiveFutures);

        public override string ToString() =>
            $"exported futures {ExportedFutures}, lent contexts {LentContexts}, imported futures {ImportedFutures}";
    }

    /// <summary>The counters of things that must not happen (boundary exceptions, stray callbacks).</summary>
    internal readonly record struct Mishaps(long ExportContained, long StrayReleases, long ImportContained, long ImportStrays)
    {
        public static Mishaps Now => new(FutureExportDiagnostics.ContainedExceptions, FutureExportDiagnostics.StrayReleases,
            ImportDiagnostics.ContainedExceptions, ImportDiagnostics.StrayCallbacks);
    }

    /// <summary>Polls <paramref name="condition"/> (every millisecond) until it holds; fails with
    /// <paramref name="message"/> after <see cref="Limit"/>.</summary>
    internal static async Task WaitUntilAsync(Func<bool> condition, Func<string> message)
    {
        DateTime deadline = DateTime.UtcNow + Limit;
        while (!condition())
        {
            if (DateTime.UtcNow >= deadline)
                Assert.Fail($"{message()} (after waiting {Limit.TotalSeconds} s)");
            await Task.Delay(1);
        }
    }

    /// <summary>Waits until the live counts are back to <paramref name="start"/>.</summary>
    internal static Task WaitForLiveCountsAsync(LiveCounts start) =>
        WaitUntilAsync(() => LiveCounts.Now == start,
            () => $"live counts did not return to their start values: start [{start}], now [{LiveCounts.Now}]");

    /// <summary>Runs <paramref name="action"/> on a new thread; the task ends with it (and with its exception).</summary>
    internal static Task RunOnDedicatedThread(Action action, string name)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                action();
                done.SetResult();
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        })
        { IsBackground = true, Name = name };
        thread.Start();
        return done.Task;
    }

    /// <summary>Spins (yielding) until <paramref name="condition"/> holds, on a thread that may
    /// block; fails after <see cref="Limit"/>.</summary>
    internal static void SpinUntil(Func<bool> condition, string what)
    {
        if (!SpinWait.SpinUntil(condition, Limit))
            throw new TimeoutException($"Timed out after {Limit.TotalSeconds} s waiting for {what}.");
    }

    /// <summary>Takes one count of <paramref name="signal"/> (bounded).</summary>
    internal static async Task WaitForSignalAsync(SemaphoreSlim signal, string what)
    {
        if (!await signal.WaitAsync(Limit))
            throw new TimeoutException($"Timed out after {Limit.TotalSeconds} s waiting for {what}.");
    }

    /// <summary>Σ x² for x in first .. first + count - 1, wrapping.</summary>
    internal static ulong SumOfSquares(ulong first, int count)
    {
        ulong sum = 0;
        for (int i = 0; i < count; i++)
        {
            ulong x = first + (ulong)i;
            sum = unchecked(sum + x * x);
        }
        return sum;
    }
}

/// <summary>
/// An <see cref="ExportedFunction"/> whose calls stay pending until the test completes them: each
/// call is queued with its argument, a TaskCompletionSource for its value (synchronous
/// continuations, so the exporter's wake runs on the thread that completes it), and a signal that
/// fires when the call's CancellationToken fires (the call then ends cancelled).
/// </summary>
internal sealed class ControlledFunction
{
    private readonly Channel<Call> _started = Channel.CreateUnbounded<Call>();
    private int _invocations;
    private int _tokensFired;

    public ControlledFunction(string name = "controlled")
    {
        Function = new ExportedFunction(name, Body);
    }

    /// <summary>One call of the body.</summary>
    /// <param name="X">The argument's id.</param>
    /// <param name="Result">Completes the call.</param>
    /// <param name="TokenFired">Set when the call's token fired.</param>
    /// <param name="PendingAnswersAtStart">The exporter's PENDING count when the body ran (before its
    /// future could be polled).</param>
    /// <param name="Thread">The managed thread the body ran on.</param>
    internal sealed record Call(ulong X, TaskCompletionSource<Message> Result, TaskCompletionSource TokenFired,
        long PendingAnswersAtStart, int Thread);

    public ExportedFunction Function { get; }

    public int Invocations => Volatile.Read(ref _invocations);

    public int TokensFired => Volatile.Read(ref _tokensFired);

    private ValueTask<Message> Body(Message argument, CancellationToken token)
    {
        Interlocked.Increment(ref _invocations);
        var call = new Call(argument.Id, new TaskCompletionSource<Message>(),
            new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously),
            ExportedFuture.PendingAnswers, Environment.CurrentManagedThreadId);
        token.Register(() =>
        {
            Interlocked.Increment(ref _tokensFired);
            call.TokenFired.TrySetResult();
            call.Result.TrySetCanceled(token);
        });
        Assert.True(_started.Writer.TryWrite(call));
        return new ValueTask<Message>(call.Result.Task);
    }

    /// <summary>The next call that started (bounded wait).</summary>
    public Task<Call> NextAsync(string what) => _started.Reader.ReadAsync().AsTask().Within(what);

    /// <summary>The next call that started, from a dedicated thread (bounded wait).</summary>
    public Call Next(string what)
    {
        Task<Call> next = _started.Reader.ReadAsync().AsTask();
        if (!next.Wait(FutureExportTestSupport.Limit))
            throw new TimeoutException($"Timed out waiting for {what}.");
        return next.Result;
    }
}

/// <summary>
/// One <c>user</c> of raw polls of a <c>poc_future</c>: the wake and deliver functions are
/// [UnmanagedCallersOnly] and find the probe by its token; it counts wakes (and the thread of the
/// last one) and keeps what was delivered.
/// </summary>
internal sealed unsafe class FutureProbe
{
    private static readonly ConcurrentDictionary<nint, FutureProbe> s_probes = new();
    private static long s_next = 0x5000;

    private readonly SemaphoreSlim _wakeSignal = new(0);
    private int _wakes;
    private int _delivers;

    public FutureProbe()
    {
        Token = (nint)Interlocked.Increment(ref s_next);
        s_probes[Token] = this;
    }

    public nint Token { get; }

    public int Wakes => Volatile.Read(ref _wakes);

    public int LastWakeThread { get; private set; }

    public int Delivers => Volatile.Read(ref _delivers);

    public int DeliveredStatus { get; private set; } = -1;

    public Message Delivered { get; private set; }

    public static delegate* unmanaged<void*, void> WakeFunction =>
        (delegate* unmanaged<void*, void>)(delegate* unmanaged[Cdecl]<void*, void>)&OnWake;

    public static delegate* unmanaged<void*, int, poc_message_view*, void> DeliverFunction =>
        (delegate* unmanaged<void*, int, poc_message_view*, void>)(delegate* unmanaged[Cdecl]<void*, int, poc_message_view*, void>)&OnDeliver;

    /// <summary>poll(handle, our wake, our deliver, our token).</summary>
    public int Poll(poc_future future) => future.vtable->poll(future.handle, WakeFunction, DeliverFunction, (void*)Token);

    /// <summary>Waits for the next wake (bounded).</summary>
    public Task WaitForWakeAsync(string what) => FutureExportTestSupport.WaitForSignalAsync(_wakeSignal, what);

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnWake(void* user)
    {
        if (!s_probes.TryGetValue((nint)user, out FutureProbe? probe)) return;
        probe.LastWakeThread = Environment.CurrentManagedThreadId;
        Interlocked.Increment(ref probe._wakes);
        probe._wakeSignal.Release();
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnDeliver(void* user, int status, poc_message_view* view)
    {
        if (!s_probes.TryGetValue((nint)user, out FutureProbe? probe)) return;
        probe.DeliveredStatus = status;
        probe.Delivered = view is null
            ? default
            : new Message(view->id, new ReadOnlySpan<byte>(view->data, checked((int)view->len)).ToArray());
        Interlocked.Increment(ref probe._delivers);
    }
}
