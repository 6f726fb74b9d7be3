using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Poc.Bridge.Futures;
using Poc.Bridge.Import;
using Poc.Bridge.Interop;
using Xunit;

namespace Poc.Bridge.Tests;

/// <summary>
/// The .NET importer of Rust futures (bridge.h "Section - Futures", "Async calls exported by Rust")
/// through the <see cref="RustCalls"/> / <see cref="RustDatabase"/> facade.
/// </summary>
[Collection(FutureCallsCollection.Name)]
public sealed class RustCallTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task FetchUser_ReadyAtOnce_CompletesSynchronously()
    {
        ValueTask<User> alice = RustCalls.FetchUserAsync(1);
        Assert.True(alice.IsCompletedSuccessfully, "fetch_user(1) yields once and wakes at once: the caller's thread finishes it");
        Assert.Equal(new User(1, "alice"), await alice);

        ValueTask<User> ada = RustCalls.FetchUserAsync(42);
        Assert.True(ada.IsCompletedSuccessfully);
        Assert.Equal(new User(42, "ada"), await ada);
    }

    [Fact]
    public async Task FetchUser_UnknownId_ThrowsRemoteCallExceptionWithCodeAndMessage()
    {
        var error = await Assert.ThrowsAsync<RemoteCallException>(() => RustCalls.FetchUserAsync(7).AsTask().WaitAsync(Bound));
        Assert.Equal(404, error.Code);
        Assert.Equal("user 7 not found", error.RemoteMessage);
        Assert.Equal("fetch_user", error.Call);
    }

    [Fact]
    public async Task FetchUser_NegativeId_PanicIsContained()
    {
        var error = await Assert.ThrowsAsync<InteropException>(() => RustCalls.FetchUserAsync(-1).AsTask().WaitAsync(Bound));
        Assert.Equal(Status.Panic, error.Status);
        Assert.Contains("negative id -1", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadConfig_ReturnsConfig_EmptyPathIsError_NulIsRejected()
    {
        RustConfig config = await RustCalls.LoadConfigAsync("settings.json").AsTask().WaitAsync(Bound);
        Assert.Equal(new RustConfig(1, "path=settings.json\nversion=1\nworkers=4\n"), config);

        string longPath = new('é', 400); // 800 UTF-8 bytes: the ArrayPool path
        RustConfig longConfig = await RustCalls.LoadConfigAsync(longPath).AsTask().WaitAsync(Bound);
        Assert.Equal($"path={longPath}\nversion=1\nworkers=4\n", longConfig.Text);

        var error = await Assert.ThrowsAsync<RemoteCallException>(() => RustCalls.LoadConfigAsync("").AsTask().WaitAsync(Bound));
        Assert.Equal(400, error.Code);
        Assert.Equal("empty path", error.RemoteMessage);

        Assert.Throws<ArgumentException>(() => RustCalls.LoadConfigAsync("a\0b"));
        Assert.Throws<ArgumentNullException>(() => RustCalls.LoadConfigAsync(null!));
    }

    [Fact]
    public async Task SyncAll_PendingThenWokenByTheRuntime_ReturnsItsValue()
    {
        await using var runtime = new RustRuntime(threads: 2);
        using RustSyncCall call = RustCalls.StartSyncAll(runtime, steps: 3, stepMs: 1);
        SyncResult result = await call.Completion.WaitAsync(Bound);
        Assert.Equal(new SyncResult(3, "synced 3 items"), result);
        await WaitUntilAsync(() => !call.ReadProgress().Running, "the sync_all task did not end");
        Assert.Equal(new SyncProgress(3, false), call.ReadProgress());

        SyncResult plain = await RustCalls.SyncAllAsync(runtime, 2, 1).AsTask().WaitAsync(Bound);
        Assert.Equal(2UL, plain.StepsDone);
    }

    [Fact]
    public async Task Database_QueryWaitsForAnInsertInProgress_AndIsWokenFromTheReleasingThread()
    {
        long strays = ImportDiagnostics.StrayCallbacks;
        using RustDatabase db = RustDatabase.Connect("mem://pending");

        // Hold the database's lock with an insert polled once by hand (it yields while holding it).
        ulong held = HandPolled.StartHeldInsert(db.Handle);

        ValueTask<IReadOnlyList<string>> query = db.QueryAsync("SELECT * FROM rows");
        ValueTask<int> insert = db.InsertAsync("first");
        Assert.False(query.IsCompleted, "the query must wait for the insert that holds the lock");
        Assert.False(insert.IsCompleted, "the insert must wait for the insert that holds the lock");

        db.Dispose(); // the started calls keep the database alive
        // Releasing the held insert drops its guard (it appends nothing) and wakes the waiters.
        Assert.Equal((int)Status.Ok, HandPolled.Release(held));

        Assert.Empty(await query.AsTask().WaitAsync(Bound));
        Assert.Equal(1, await insert.AsTask().WaitAsync(Bound));
        Assert.Equal(strays, ImportDiagnostics.StrayCallbacks);
    }

    [Fact]
    public async Task Database_QueryInsertAndErrors()
    {
        using RustDatabase db = RustDatabase.Connect("mem://basic");
        Assert.Empty(await db.QueryAsync("SELECT * FROM rows").AsTask().WaitAsync(Bound));
        Assert.Equal(1, await db.InsertAsync("a").AsTask().WaitAsync(Bound));
        Assert.Equal(2, await db.InsertAsync("b").AsTask().WaitAsync(Bound));
        Assert.Equal(["a", "b"], await db.QueryAsync("select rows").AsTask().WaitAsync(Bound));

        Assert.Equal(400, (await Assert.ThrowsAsync<RemoteCallException>(() => db.QueryAsync("DELETE").AsTask())).Code);
        Assert.Equal(400, (await Assert.ThrowsAsync<RemoteCallException>(() => db.InsertAsync("").AsTask())).Code);
        Assert.Equal(400, (await Assert.ThrowsAsync<RemoteCallException>(() => db.InsertAsync("x\ny").AsTask())).Code);
        Assert.Equal(2, (await db.QueryAsync("SELECT").AsTask().WaitAsync(Bound)).Count);
        Assert.Throws<ArgumentException>(() => RustDatabase.Connect(""));
    }

    [Fact]
    public async Task Database_ConcurrentInserts_AreSerialised_EachCountOnce()
    {
        const int Inserts = 20;
        using RustDatabase db = RustDatabase.Connect("mem://concurrent");
        // One gate for all: its continuations run on the thread pool, so the inserts start together
        // without blocking pool threads.
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<int>[] inserts = Enumerable.Range(0, Inserts)
            .Select(async i =>
            {
                await start.Task;
                return await db.InsertAsync($"row{i}");
            })
            .ToArray();
        start.SetResult();
        int[] counts = await Task.WhenAll(inserts).WaitAsync(Bound);
        Assert.Equal(Enumerable.Range(1, Inserts), counts.Order());
        IReadOnlyList<string> rows = await db.QueryAsync("SELECT").AsTask().WaitAsync(Bound);
        Assert.Equal(Enumerable.Range(0, Inserts).Select(i => $"row{i}").Order(), rows.Order());
    }

    [Fact]
    public void Database_Disposed_Or_FreedBehindItsBack_IsRejected()
    {
        var db = RustDatabase.Connect("mem://stale");
        db.Dispose();
        db.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => db.QueryAsync("SELECT"));
        Assert.Throws<ObjectDisposedException>(() => db.InsertAsync("a"));

        using var other = RustDatabase.Connect("mem://stale2");
        Assert.Equal((int)Status.Ok, NativeMethods.poc_rust_database_free(other.Handle));
        Assert.Throws<ArgumentException>(() => other.QueryAsync("SELECT"));
        Assert.Throws<ArgumentException>(() => other.InsertAsync("a"));
    }

    [Fact]
    public async Task SyncAll_CancelledDuringWork_StopsBeforeItsSteps_AndDoesNotGrowAfterwards()
    {
        const int Steps = 100_000;
        await using var runtime = new RustRuntime(threads: 2);
        using var cts = new CancellationTokenSource();
        using RustSyncCall call = RustCalls.StartSyncAll(runtime, Steps, stepMs: 1, cts.Token);
        await WaitUntilAsync(() => call.ReadProgress().StepsDone > 0, "sync_all made no progress");

        cts.Cancel();
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call.Completion.WaitAsync(Bound));
        Assert.Equal(cts.Token, cancelled.CancellationToken);

        await WaitUntilAsync(() => !call.ReadProgress().Running, "the aborted sync_all task did not end");
        SyncProgress final = call.ReadProgress();
        Assert.InRange(final.StepsDone, 1UL, Steps - 1UL);
        await Task.Yield();
        Assert.Equal(final, call.ReadProgress()); // running == 0: the count is final
    }

    [Fact]
    public async Task CancelledBeforeTheCall_EndsCancelledSynchronously_AndReleasesTheFuture()
    {
        long live = FutureOperation.LiveFutures;
        await using var runtime = new RustRuntime(threads: 1);
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        ValueTask<SyncResult> sync = RustCalls.SyncAllAsync(runtime, 1000, 1, cts.Token);
        Assert.True(sync.IsCanceled);
        var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sync.AsTask());
        Assert.Equal(cts.Token, error.CancellationToken);

        Assert.True(RustCalls.FetchUserAsync(1, cts.Token).IsCanceled);
        Assert.Equal(live, FutureOperation.LiveFutures);
    }

    [Fact]
    public async Task SyncAll_RuntimeShutdown_EndsWithShutdown()
    {
        var runtime = new RustRuntime(threads: 1);
        ValueTask<SyncResult> sync = RustCalls.SyncAllAsync(runtime, 100_000, 1);
        await runtime.ShutdownAsync();
        var error = await Assert.ThrowsAsync<InteropException>(() => sync.AsTask().WaitAsync(Bound));
        Assert.Equal(Status.Shutdown, error.Status);
        Assert.Equal(Status.Shutdown, Assert.Throws<InteropException>(() => RustCalls.SyncAllAsync(runtime, 1, 1)).Status);
        await runtime.DisposeAsync();
        Assert.Throws<ObjectDisposedException>(() => RustCalls.SyncAllAsync(runtime, 1, 1));
    }

    [Fact]
    public async Task CallsDroppedWithoutAwaiting_ReleaseTheirFutures_AndLeaveNoOpListed()
    {
        const int Calls = 50;
        long live = FutureOperation.LiveFutures;
        int listed = FutureOperation.ListedOperations;
        (long Strays, long Contained) diagnostics = (ImportDiagnostics.StrayCallbacks, ImportDiagnostics.ContainedExceptions);
        await using var runtime = new RustRuntime(threads: 2);
        using var cts = new CancellationTokenSource();

        for (int i = 0; i < Calls; i++)
        {
            _ = RustCalls.SyncAllAsync(runtime, 1, 1);                 // finishes on its own
            _ = RustCalls.SyncAllAsync(runtime, 100_000, 1, cts.Token); // finishes when cancelled
            _ = RustCalls.FetchUserAsync(7);                            // finished already
        }
        cts.Cancel();

        await WaitUntilAsync(() => FutureOperation.LiveFutures == live && FutureOperation.ListedOperations == listed,
            $"futures still held: {FutureOperation.LiveFutures - live}, ops still listed: {FutureOperation.ListedOperations - listed}");
        Assert.Equal(diagnostics, (ImportDiagnostics.StrayCallbacks, ImportDiagnostics.ContainedExceptions));
    }

    [Fact]
    public async Task ManyConcurrentCalls_EachCompletesExactlyOnce()
    {
        const int Fetches = 1000;
        const int Syncs = 200;
        long live = FutureOperation.LiveFutures;
        (long Strays, long Contained) diagnostics = (ImportDiagnostics.StrayCallbacks, ImportDiagnostics.ContainedExceptions);
        int[] ids = [1, 2, 42, 7];
        await using var runtime = new RustRuntime(threads: 2);

        Task<string>[] fetches = Enumerable.Range(0, Fetches)
            .Select(i => Task.Run(async () =>
            {
                try
                {
                    return (await RustCalls.FetchUserAsync(ids[i % ids.Length])).Name;
                }
                catch (RemoteCallException e) when (e.Code == 404)
                {
                    return "404";
                }
            }))
            .ToArray();
        Task<SyncResult>[] syncs = Enumerable.Range(0, Syncs)
            .Select(_ => RustCalls.SyncAllAsync(runtime, 1, 1).AsTask())
            .ToArray();

        string[] names = await Task.WhenAll(fetches).WaitAsync(Bound);
        SyncResult[] synced = await Task.WhenAll(syncs).WaitAsync(Bound);

        var counts = names.GroupBy(n => n).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(new Dictionary<string, int> { ["alice"] = 250, ["bob"] = 250, ["ada"] = 250, ["404"] = 250 }, counts);
        Assert.All(synced, s => Assert.Equal(new SyncResult(1, "synced 1 items"), s));
        Assert.Equal(live, FutureOperation.LiveFutures);
        Assert.Equal(diagnostics, (ImportDiagnostics.StrayCallbacks, ImportDiagnostics.ContainedExceptions));
    }

    /// <summary>Polls <paramref name="condition"/> until it holds, for at most <see cref="Bound"/>.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition, string message)
    {
        DateTime deadline = DateTime.UtcNow + Bound;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{message} within {Bound.TotalSeconds} s");
            await Task.Delay(1);
        }
    }

}

/// <summary>A future polled by hand through its vtable (to hold the Rust database's lock).</summary>
internal static unsafe class HandPolled
{
    private static readonly Dictionary<ulong, poc_future> s_futures = [];

    /// <summary>Starts an insert and polls it once: it holds the lock and yields (PENDING).</summary>
    internal static ulong StartHeldInsert(ulong db)
    {
        poc_future future;
        fixed (byte* row = "held\0"u8) Assert.Equal((int)Status.Ok, NativeMethods.poc_rust_database_insert(db, row, &future));
        Assert.Equal((int)Status.Pending, future.vtable->poll(future.handle, NoWake, NoDeliver, null));
        lock (s_futures) s_futures.Add(future.handle, future);
        return future.handle;
    }

    /// <summary>Releases a future started by <see cref="StartHeldInsert"/>.</summary>
    internal static int Release(ulong handle)
    {
        poc_future future;
        lock (s_futures) Assert.True(s_futures.Remove(handle, out future));
        return future.vtable->release(future.handle);
    }

    private static delegate* unmanaged<void*, void> NoWake =>
        (delegate* unmanaged<void*, void>)(delegate* unmanaged[Cdecl]<void*, void>)&IgnoreWake;

    private static delegate* unmanaged<void*, int, poc_message_view*, void> NoDeliver =>
        (delegate* unmanaged<void*, int, poc_message_view*, void>)(delegate* unmanaged[Cdecl]<void*, int, poc_message_view*, void>)&IgnoreDeliver;

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void IgnoreWake(void* user)
    {
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void IgnoreDeliver(void* user, int status, poc_message_view* view)
    {
    }
}
