using System.Text;
using Poc.Bridge.Futures;
using Poc.Bridge.Interop;

namespace Poc.Bridge;

/// <summary>A user as <c>fetch_user</c> returns it.</summary>
/// <param name="Id">The user id.</param>
/// <param name="Name">The user name.</param>
public sealed record User(int Id, string Name);

/// <summary>A configuration as <c>load_config</c> returns it.</summary>
/// <param name="Version">The config version.</param>
/// <param name="Text">The config text (<c>key=value</c> lines).</param>
public sealed record RustConfig(int Version, string Text);

/// <summary>What <c>sync_all</c> returns.</summary>
/// <param name="StepsDone">Steps done.</param>
/// <param name="Summary">"synced N items".</param>
public readonly record struct SyncResult(ulong StepsDone, string Summary);

/// <summary>Progress of a <c>sync_all</c> call (<c>poc_rust_sync_progress</c>).</summary>
/// <param name="StepsDone">Steps completed so far.</param>
/// <param name="Running">True while its task is alive; once false, <paramref name="StepsDone"/> is final.</param>
public readonly record struct SyncProgress(ulong StepsDone, bool Running);

/// <summary>
/// The async calls exported by Rust (bridge.h "Section - Async calls exported by Rust") as .NET
/// async methods: <c>await RustCalls.FetchUserAsync(42)</c> returns a <see cref="User"/>; the Rust
/// "square" function lent to .NET (<see cref="SquareFunction"/>), and the Rust async fn that awaits
/// a lent function of any runtime (<see cref="SumCallsAsync"/>).
/// </summary>
/// <remarks>
/// <para>Each call creates a Rust future and polls it on the caller's thread first: a call that is
/// ready at once returns a completed ValueTask. Otherwise the Rust side wakes it and it is polled
/// again on the thread pool. Errors: <c>POC_ERROR</c> → <see cref="RemoteCallException"/> (code and
/// message), <c>POC_PANIC</c> → <see cref="InteropException"/> (<see cref="Status.Panic"/>, with the
/// panic text), cancellation → <see cref="OperationCanceledException"/>, a stopped runtime →
/// <see cref="InteropException"/> (<see cref="Status.Shutdown"/>). These come from the returned
/// ValueTask; invalid arguments throw at the call.</para>
/// <para>A CancellationToken cancels the Rust future (cooperatively: no more of it runs; for
/// <c>sync_all</c> its task is aborted). Every future is released exactly once, also when the
/// returned ValueTask is never awaited. Thread safety: any thread, concurrently.</para>
/// </remarks>
public static unsafe class RustCalls
{
    /// <summary><c>fetch_user(id)</c>: 1 "alice", 2 "bob", 42 "ada"; another id ≥ 0 fails with
    /// <see cref="RemoteCallException"/> 404; a negative id panics in Rust
    /// (<see cref="InteropException"/> with <see cref="Status.Panic"/>).</summary>
    public static ValueTask<User> FetchUserAsync(int id, CancellationToken cancellationToken = default)
    {
        poc_future future;
        int status = NativeMethods.poc_rust_fetch_user(id, &future);
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "start fetch_user");
        return Map(FutureOperation.Run(future, "fetch_user", null, cancellationToken),
            static m => new User(unchecked((int)m.Id), Text(m)));
    }

    /// <summary><c>load_config(path)</c>: a synthetic config (nothing is read from disk); an empty
    /// path fails with <see cref="RemoteCallException"/> 400.</summary>
    /// <exception cref="ArgumentException"><paramref name="path"/> is null or contains NUL.</exception>
    public static ValueTask<RustConfig> LoadConfigAsync(string path, CancellationToken cancellationToken = default)
    {
        poc_future future;
        int status;
        using (var arg = new Utf8Argument(path, stackalloc byte[256], nameof(path)))
        {
            fixed (byte* p = arg) status = NativeMethods.poc_rust_load_config(p, &future);
        }
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "start load_config");
        return Map(FutureOperation.Run(future, "load_config", null, cancellationToken),
            static m => new RustConfig(unchecked((int)m.Id), Text(m)));
    }

    /// <summary><c>sync_all()</c> on <paramref name="runtime"/>: <paramref name="steps"/> steps of
    /// <paramref name="stepMs"/> ms on tokio's timer. Cancellation aborts the Rust task.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative count or duration.</exception>
    /// <exception cref="InteropException">The runtime is shutting down.</exception>
    /// <exception cref="ObjectDisposedException">The runtime was disposed.</exception>
    public static ValueTask<SyncResult> SyncAllAsync(RustRuntime runtime, int steps, int stepMs,
        CancellationToken cancellationToken = default)
    {
        poc_future future = StartSyncFuture(runtime, steps, stepMs);
        return Map(FutureOperation.Run(future, "sync_all", null, cancellationToken), ToSyncResult);
    }

    /// <summary>As <see cref="SyncAllAsync"/>, returning a <see cref="RustSyncCall"/> that can also
    /// read the call's progress, until it is disposed.</summary>
    public static RustSyncCall StartSyncAll(RustRuntime runtime, int steps, int stepMs,
        CancellationToken cancellationToken = default)
    {
        poc_future future = StartSyncFuture(runtime, steps, stepMs);
        var shared = new SharedFuture(future);
        ValueTask<SyncResult> call = Map(FutureOperation.Run(future, "sync_all", shared, cancellationToken), ToSyncResult);
        return new RustSyncCall(shared, call.AsTask());
    }

    /// <summary>
    /// The Rust "square" function (bridge.h <c>poc_rust_square_fn</c>) lent to .NET: calls compute
    /// <c>x * x</c> inside the call (<see cref="SquareMode.Ready"/>, no runtime needed:
    /// <paramref name="runtime"/> may be null), in a task spawned on <paramref name="runtime"/>
    /// (<see cref="SquareMode.Posted"/>) or after tokio's timer of <paramref name="delay"/>
    /// (<see cref="SquareMode.Timer"/>, rounded up to whole milliseconds). x above 2^32 - 1 fails
    /// with <see cref="RemoteCallException"/> 400 "overflow"; x = 2^64 - 1 panics in Rust
    /// (<see cref="InteropException"/>, <see cref="Status.Panic"/>).
    /// </summary>
    /// <returns>The function, owned by the caller: dispose it, or hand it to <see cref="SumCallsAsync"/>
    /// / <see cref="CppCalls.SumCallsAsync"/>. It may outlive the runtime: calls made after the
    /// runtime began shutting down throw <see cref="InteropException"/> (<see cref="Status.Shutdown"/>),
    /// calls in flight then end with it.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="runtime"/> is null and the mode needs it.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An unknown <paramref name="mode"/>, or a
    /// <paramref name="delay"/> that is negative or over <see cref="uint.MaxValue"/> ms.</exception>
    /// <exception cref="InteropException">The runtime is shut down (<see cref="Status.Shutdown"/>).</exception>
    /// <exception cref="ObjectDisposedException">The runtime was disposed.</exception>
    public static ImportedFunction SquareFunction(RustRuntime? runtime, SquareMode mode, TimeSpan delay)
    {
        CppCalls.CheckMode(mode);
        if (runtime is null && mode != SquareMode.Ready)
            throw new ArgumentNullException(nameof(runtime), $"The {mode} square function runs on a Rust runtime.");
        uint delayMs = CppCalls.ToMilliseconds(delay);
        poc_async_fn function;
        int status;
        if (runtime is null)
        {
            status = NativeMethods.poc_rust_square_fn(0, (uint)mode, delayMs, &function);
        }
        else
        {
            nint rt = runtime.Native.Enter();
            try
            {
                status = NativeMethods.poc_rust_square_fn(rt, (uint)mode, delayMs, &function);
            }
            finally
            {
                runtime.Native.Leave();
            }
        }
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "make the Rust square function");
        return new ImportedFunction(function, "square");
    }

    /// <summary>
    /// <c>sum_calls(callee, first, count)</c>, a Rust async fn (bridge.h <c>poc_rust_sum_calls</c>)
    /// that awaits <paramref name="callee"/>'s calls with <c>{id = first + i}</c> for
    /// i = 0 .. count - 1, one after the other, and returns the wrapping sum of the values' ids. It
    /// runs on the thread that polls it (the caller's, then the thread pool's): with a callee whose
    /// calls finish at once, the returned ValueTask is already complete.
    /// </summary>
    /// <remarks>The first call that fails ends it: the callee's <c>POC_ERROR</c> →
    /// <see cref="RemoteCallException"/> with the callee's code and the message prefixed
    /// "call &lt;x&gt;: "; its <c>POC_PANIC</c> → <see cref="InteropException"/>
    /// (<see cref="Status.Panic"/>) with that message; a call that could not start or was cancelled
    /// by the callee → <see cref="RemoteCallException"/> 502. Cancelling the token cancels the call
    /// in flight (an <see cref="ExportedFunction"/> body sees its token fire).</remarks>
    /// <param name="callee">The function to call: an <see cref="ExportedFunction"/> (a fresh lend
    /// each time) or an <see cref="ImportedFunction"/>, which is handed over (disposed by this).</param>
    /// <param name="first">The first argument.</param>
    /// <param name="count">How many calls.</param>
    /// <param name="cancellationToken">Cancels the sum and the call in flight.</param>
    /// <returns>The wrapping sum of the calls' values.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="callee"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative.</exception>
    /// <exception cref="ObjectDisposedException"><paramref name="callee"/> is an
    /// <see cref="ImportedFunction"/> already disposed or handed over.</exception>
    public static ValueTask<ulong> SumCallsAsync(AsyncFunction callee, ulong first, int count,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(callee);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        poc_async_fn function = callee.Lend(); // taken over by poc_rust_sum_calls whatever it returns
        poc_future future;
        int status = NativeMethods.poc_rust_sum_calls(function, first, (uint)count, &future);
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "start sum_calls");
        return Map(FutureOperation.Run(future, "sum_calls", null, cancellationToken), static m => m.Id);
    }

    private static poc_future StartSyncFuture(RustRuntime runtime, int steps, int stepMs)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        ArgumentOutOfRangeException.ThrowIfNegative(stepMs);
        poc_future future;
        int status;
        nint rt = runtime.Native.Enter();
        try
        {
            status = NativeMethods.poc_rust_sync_all(rt, (uint)steps, (uint)stepMs, &future);
        }
        finally
        {
            runtime.Native.Leave();
        }
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "start sync_all");
        return future;
    }

    private static SyncResult ToSyncResult(Message m) => new(m.Id, Text(m));

    /// <summary>The UTF-8 payload as a string.</summary>
    internal static string Text(Message m) => m.Payload.IsEmpty ? "" : Encoding.UTF8.GetString(m.Payload.Span);

    /// <summary>Maps the value without an await when it is there already.</summary>
    internal static ValueTask<T> Map<T>(ValueTask<Message> call, Func<Message, T> map) =>
        call.IsCompletedSuccessfully ? new ValueTask<T>(map(call.Result)) : FutureResults.AwaitAndMap(call, map);
}

/// <summary>
/// A running <c>sync_all</c> call whose progress can be read (<see cref="RustCalls.StartSyncAll"/>).
/// The Rust future is released when both the call finished and this object is disposed.
/// </summary>
public sealed class RustSyncCall : IDisposable
{
    private readonly SharedFuture _future;

    internal RustSyncCall(SharedFuture future, Task<SyncResult> completion)
    {
        _future = future;
        Completion = completion;
    }

    /// <summary>The call's outcome (as <see cref="RustCalls.SyncAllAsync"/>'s).</summary>
    public Task<SyncResult> Completion { get; }

    /// <summary>Reads the progress now; never blocks.</summary>
    /// <exception cref="ObjectDisposedException">Disposed.</exception>
    public SyncProgress ReadProgress()
    {
        if (!_future.TryReadSyncProgress(out ulong steps, out bool running, out int status))
            throw new ObjectDisposedException(nameof(RustSyncCall));
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "read the sync_all progress");
        return new SyncProgress(steps, running);
    }

    /// <summary>Stops reading progress (the call itself goes on; cancel it with its token). Idempotent.</summary>
    public void Dispose() => _future.DropReader();
}

/// <summary>
/// <c>Database</c> exported by Rust (rows live in memory): <see cref="Connect"/>, then
/// <see cref="QueryAsync"/> and <see cref="InsertAsync"/>; inserts are serialised by the Rust
/// side's async lock in the order they first polled.
/// </summary>
/// <remarks>Calls already started keep the database alive after <see cref="Dispose"/>. Calls after
/// it throw <see cref="ObjectDisposedException"/>. Thread safety: any thread, concurrently.</remarks>
public sealed unsafe class RustDatabase : IDisposable
{
    private readonly ulong _handle;
    private int _disposed;

    private RustDatabase(ulong handle) => _handle = handle;

    /// <summary>The native handle (tests).</summary>
    internal ulong Handle => _handle;

    /// <summary><c>Database::connect(url)</c>.</summary>
    /// <exception cref="ArgumentException"><paramref name="url"/> is null, empty or contains NUL.</exception>
    public static RustDatabase Connect(string url)
    {
        ulong db;
        int status;
        using (var arg = new Utf8Argument(url, stackalloc byte[256], nameof(url)))
        {
            fixed (byte* p = arg) status = NativeMethods.poc_rust_database_connect(p, &db);
        }
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "connect to the Rust database");
        return new RustDatabase(db);
    }

    /// <summary><c>Database::query(sql)</c>: every row for a SELECT; other sql fails with
    /// <see cref="RemoteCallException"/> 400.</summary>
    /// <exception cref="ObjectDisposedException">Disposed.</exception>
    /// <exception cref="ArgumentException">A null or NUL-containing sql, or a stale handle.</exception>
    public ValueTask<IReadOnlyList<string>> QueryAsync(string sql, CancellationToken cancellationToken = default)
    {
        poc_future future = Start(sql, nameof(sql), query: true);
        return RustCalls.Map(FutureOperation.Run(future, "database query", null, cancellationToken), static m =>
        {
            string text = RustCalls.Text(m);
            return (IReadOnlyList<string>)(text.Length == 0 ? Array.Empty<string>() : text.Split('\n'));
        });
    }

    /// <summary><c>Database::insert(row)</c>: appends <paramref name="row"/>; returns the row count
    /// after the insert. An empty row or one with '\n' fails with <see cref="RemoteCallException"/>
    /// 400. Cancelled before it finished, it appends nothing.</summary>
    /// <exception cref="ObjectDisposedException">Disposed.</exception>
    /// <exception cref="ArgumentException">A null or NUL-containing row, or a stale handle.</exception>
    public ValueTask<int> InsertAsync(string row, CancellationToken cancellationToken = default)
    {
        poc_future future = Start(row, nameof(row), query: false);
        return RustCalls.Map(FutureOperation.Run(future, "database insert", null, cancellationToken),
            static m => unchecked((int)m.Id));
    }

    private poc_future Start(string text, string paramName, bool query)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        poc_future future;
        int status;
        using (var arg = new Utf8Argument(text, stackalloc byte[256], paramName))
        {
            fixed (byte* p = arg)
            {
                status = query
                    ? NativeMethods.poc_rust_database_query(_handle, p, &future)
                    : NativeMethods.poc_rust_database_insert(_handle, p, &future);
            }
        }
        if (status == (int)Status.Ok) return future;
        // A Dispose that raced with this call made the handle stale.
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        throw StatusErrors.ToException(status, query ? "start a database query" : "start a database insert");
    }

    /// <summary>Frees the handle (<c>poc_rust_database_free</c>); idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        NativeMethods.poc_rust_database_free(_handle); // INVALID only if freed behind our back
    }
}
