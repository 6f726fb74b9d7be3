using Poc.Bridge.Futures;
using Poc.Bridge.Interop;

namespace Poc.Bridge;

/// <summary>
/// The async calls exported by C++ (bridge.h "Section - Async calls exported by C++") as .NET
/// async methods: <c>await CppCalls.DelayedSquareAsync(runtime, 7, TimeSpan.Zero)</c> returns 49;
/// the C++ "square" function lent to .NET (<see cref="SquareFunction"/>), and the C++ coroutine that
/// awaits a lent function of any runtime (<see cref="SumCallsAsync"/>).
/// </summary>
/// <remarks>
/// <para>Each call starts an Asio operation on the <see cref="CppRuntime"/>'s io_context and awaits
/// its <c>poc_future</c> like <see cref="RustCalls"/> does (the first poll runs on the caller's
/// thread; the C++ side's wake queues the next poll on the thread pool). Errors:
/// <c>POC_ERROR</c> → <see cref="RemoteCallException"/> (code and message), <c>POC_PANIC</c> →
/// <see cref="InteropException"/> (<see cref="Status.Panic"/>), cancellation →
/// <see cref="OperationCanceledException"/>, the runtime shutting down while the call runs →
/// <see cref="InteropException"/> (<see cref="Status.Shutdown"/>). These come from the returned
/// ValueTask; invalid arguments and a runtime already shut down throw at the call.</para>
/// <para>A CancellationToken emits the operation's Asio cancellation. Every future is released
/// exactly once, also when the returned ValueTask is never awaited. Thread safety: any thread,
/// concurrently.</para>
/// </remarks>
public static unsafe class CppCalls
{
    /// <summary><c>delayed_square(x)</c> on <paramref name="runtime"/>: an <c>asio::steady_timer</c>
    /// waits <paramref name="delay"/> (rounded up to whole milliseconds), then the value is
    /// <c>x * x</c>. <paramref name="x"/> above 2^32 - 1 fails with <see cref="RemoteCallException"/>
    /// 400 "overflow".</summary>
    /// <exception cref="ArgumentNullException"><paramref name="runtime"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative or over
    /// <see cref="uint.MaxValue"/> ms.</exception>
    /// <exception cref="InteropException">The runtime is shut down (<see cref="Status.Shutdown"/>).</exception>
    /// <exception cref="ObjectDisposedException">The runtime was disposed.</exception>
    public static ValueTask<ulong> DelayedSquareAsync(CppRuntime runtime, ulong x, TimeSpan delay,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        uint delayMs = ToMilliseconds(delay);
        poc_future future;
        int status;
        nint rt = runtime.Native.Enter();
        try
        {
            status = NativeMethods.poc_cpp_delayed_square(rt, x, delayMs, &future);
        }
        finally
        {
            runtime.Native.Leave();
        }
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "start delayed_square");
        return RustCalls.Map(FutureOperation.Run(future, "delayed_square", null, cancellationToken),
            static m => m.Id);
    }

    /// <summary>
    /// The C++ "square" function (bridge.h <c>poc_cpp_square_fn</c>) lent to .NET: calls compute
    /// <c>x * x</c> inside the call (<see cref="SquareMode.Ready"/>), in an <c>asio::post</c> to the
    /// runtime's io_context (<see cref="SquareMode.Posted"/>) or after an <c>asio::steady_timer</c>
    /// of <paramref name="delay"/> (<see cref="SquareMode.Timer"/>, rounded up to whole
    /// milliseconds). x above 2^32 - 1 fails with <see cref="RemoteCallException"/> 400 "overflow";
    /// x = 2^64 - 1 throws a C++ exception inside the operation (<see cref="InteropException"/>,
    /// <see cref="Status.Panic"/>).
    /// </summary>
    /// <returns>The function, owned by the caller: dispose it (it keeps the runtime's io_context
    /// alive until then), or hand it to <see cref="SumCallsAsync"/>/<see cref="RustCalls.SumCallsAsync"/>.
    /// Calls made after the runtime began shutting down throw <see cref="InteropException"/>
    /// (<see cref="Status.Shutdown"/>).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="runtime"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An unknown <paramref name="mode"/>, or a
    /// <paramref name="delay"/> that is negative or over <see cref="uint.MaxValue"/> ms.</exception>
    /// <exception cref="InteropException">The runtime is shut down (<see cref="Status.Shutdown"/>).</exception>
    /// <exception cref="ObjectDisposedException">The runtime was disposed.</exception>
    public static ImportedFunction SquareFunction(CppRuntime runtime, SquareMode mode, TimeSpan delay)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        CheckMode(mode);
        uint delayMs = ToMilliseconds(delay);
        poc_async_fn function;
        int status;
        nint rt = runtime.Native.Enter();
        try
        {
            status = NativeMethods.poc_cpp_square_fn(rt, (uint)mode, delayMs, &function);
        }
        finally
        {
            runtime.Native.Leave();
        }
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "make the C++ square function");
        return new ImportedFunction(function, "square");
    }

    /// <summary>
    /// <c>sum_calls(callee, first, count)</c> as a C++20 coroutine on <paramref name="runtime"/>
    /// (bridge.h <c>poc_cpp_sum_calls</c>): it <c>co_await</c>s <paramref name="callee"/>'s calls
    /// with <c>{id = first + i}</c> for i = 0 .. count - 1, one after the other, and returns the
    /// wrapping sum of the values' ids. Same outcomes as <see cref="RustCalls.SumCallsAsync"/>.
    /// </summary>
    /// <param name="runtime">The runtime whose io_context runs the coroutine.</param>
    /// <param name="callee">The function to call: an <see cref="ExportedFunction"/> (a fresh lend
    /// each time) or an <see cref="ImportedFunction"/>, which is handed over (disposed by this).</param>
    /// <param name="first">The first argument.</param>
    /// <param name="count">How many calls.</param>
    /// <param name="cancellationToken">Cancels the coroutine, which cancels the call in flight.</param>
    /// <returns>The wrapping sum of the calls' values.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="runtime"/> or <paramref name="callee"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative.</exception>
    /// <exception cref="ObjectDisposedException">The runtime was disposed, or <paramref name="callee"/>
    /// is an <see cref="ImportedFunction"/> already disposed or handed over.</exception>
    /// <exception cref="InteropException">The runtime is shut down (<see cref="Status.Shutdown"/>).</exception>
    public static ValueTask<ulong> SumCallsAsync(CppRuntime runtime, AsyncFunction callee, ulong first, int count,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(callee);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        poc_future future;
        int status;
        nint rt = runtime.Native.Enter();
        try
        {
            poc_async_fn function = callee.Lend(); // taken over by poc_cpp_sum_calls whatever it returns
            status = NativeMethods.poc_cpp_sum_calls(rt, function, first, (uint)count, &future);
        }
        finally
        {
            runtime.Native.Leave();
        }
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "start sum_calls");
        return RustCalls.Map(FutureOperation.Run(future, "sum_calls", null, cancellationToken), static m => m.Id);
    }

    /// <summary>Throws for a mode that is not a <see cref="SquareMode"/> value.</summary>
    internal static void CheckMode(SquareMode mode)
    {
        if (mode is not (SquareMode.Ready or SquareMode.Posted or SquareMode.Timer))
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown square mode.");
    }

    /// <summary>A non-negative delay in whole milliseconds, rounded up.</summary>
    internal static uint ToMilliseconds(TimeSpan delay)
    {
        if (delay < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(delay), delay, "The delay must not be negative.");
        long ms = delay.Ticks / TimeSpan.TicksPerMillisecond
            + (delay.Ticks % TimeSpan.TicksPerMillisecond != 0 ? 1 : 0);
        if (ms > uint.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(delay), delay, $"The delay must be at most {uint.MaxValue} ms.");
        return (uint)ms;
    }
}
