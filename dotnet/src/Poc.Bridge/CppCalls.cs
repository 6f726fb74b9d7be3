using Poc.Bridge.Futures;
using Poc.Bridge.Interop;

namespace Poc.Bridge;

/// <summary>
/// The async calls exported by C++ (bridge.h "Section - Async calls exported by C++") as .NET
/// async methods: <c>await CppCalls.DelayedSquareAsync(runtime, 7, TimeSpan.Zero)</c> returns 49.
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

    /// <summary>A non-negative delay in whole milliseconds, rounded up.</summary>
    private static uint ToMilliseconds(TimeSpan delay)
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
