using Poc.Bridge.Futures;
using Poc.Bridge.Interop;

namespace Poc.Bridge;

/// <summary>
/// A .NET async method lent to the other runtimes as a bridge.h <c>poc_async_fn</c>: Rust and C++
/// call it, and await each call's <c>poc_future</c> like any of their own async calls —
/// <c>await RustCalls.SumCallsAsync(new ExportedFunction("twice", TwiceAsync), 1, 10)</c>.
/// </summary>
/// <remarks>
/// <para>Each time the function is handed to native code it gets a fresh <c>poc_async_fn</c>,
/// whose context the native holder gives back with <c>release</c>; the instance itself can be
/// handed over any number of times and needs no disposal.</para>
/// <para>Each native <c>call</c> runs the body once, on the calling (native) thread, with the
/// argument copied and with a <see cref="CancellationToken"/> of its own that fires when the caller
/// cancels or releases the call's future. The body should not block: return a pending ValueTask
/// instead. Its outcome reaches the caller as:</para>
/// <list type="bullet">
/// <item>a value → <c>POC_OK</c> (a ValueTask already completed when the body returns: the
/// caller's first poll gets it, with no wake and no thread hop);</item>
/// <item><see cref="RemoteCallException"/> → <c>POC_ERROR</c> with its <see cref="RemoteCallException.Code"/>
/// and <see cref="RemoteCallException.RemoteMessage"/>;</item>
/// <item><see cref="OperationCanceledException"/> after the call was cancelled → <c>POC_CANCELLED</c>;</item>
/// <item>any other exception, also one thrown before the body returned → <c>POC_PANIC</c> with
/// "<c>&lt;exception type&gt;: &lt;message&gt;</c>"; the process and the function are unaffected.</item>
/// </list>
/// <para>A completed call's wake runs on the thread that completed the body's task (a thread-pool
/// thread, a timer, the thread that completed a TaskCompletionSource). Thread safety: any thread,
/// concurrently.</para>
/// </remarks>
public sealed class ExportedFunction : AsyncFunction
{
    private readonly Func<Message, CancellationToken, ValueTask<Message>> _body;

    /// <summary>Lends <paramref name="body"/> under <paramref name="name"/>.</summary>
    /// <param name="name">The name used in messages (e.g. "square").</param>
    /// <param name="body">The async method: the call's argument and its cancellation token → the value.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="body"/> is null.</exception>
    public ExportedFunction(string name, Func<Message, CancellationToken, ValueTask<Message>> body) : base(name)
    {
        ArgumentNullException.ThrowIfNull(body);
        _body = body;
    }

    /// <summary>
    /// The .NET "square" example (bridge.h, Section - Futures): for an argument <c>{id = x}</c>,
    /// the value <c>{id = x * x}</c> when x ≤ 2^32 - 1; for x = 2^64 - 1 the work throws
    /// <see cref="InvalidOperationException"/> (→ <c>POC_PANIC</c>, to demonstrate containment);
    /// otherwise <see cref="RemoteCallException"/> 400 "overflow" (→ <c>POC_ERROR</c>).
    /// </summary>
    /// <param name="mode"><see cref="SquareMode.Ready"/>: a completed ValueTask;
    /// <see cref="SquareMode.Posted"/>: computed on the thread pool;
    /// <see cref="SquareMode.Timer"/>: computed after <c>Task.Delay(<paramref name="delay"/>, token)</c>.</param>
    /// <param name="delay">The Timer mode's delay (ignored by the others).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="mode"/> is unknown, or
    /// <paramref name="delay"/> is negative or longer than <c>Task.Delay</c> accepts.</exception>
    public static ExportedFunction Square(SquareMode mode, TimeSpan delay)
    {
        if (delay < TimeSpan.Zero || delay.TotalMilliseconds > uint.MaxValue - 1.0)
            throw new ArgumentOutOfRangeException(nameof(delay), delay, $"The delay must be between 0 and {uint.MaxValue - 1} ms.");
        return mode switch
        {
            SquareMode.Ready => new ExportedFunction("square", static (argument, _) => new ValueTask<Message>(SquareOf(argument.Id))),
            SquareMode.Posted => new ExportedFunction("square",
                static (argument, token) => new ValueTask<Message>(Task.Run(() => SquareOf(argument.Id), token))),
            SquareMode.Timer => new ExportedFunction("square", (argument, token) => DelayedSquare(argument.Id, delay, token)),
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown square mode."),
        };
    }

    /// <summary>Runs one call of the body and exports it (<see cref="LentFunctions"/>' <c>call</c>).</summary>
    internal poc_future Start(Message argument) => ExportedFuture.Start(_body, argument);

    /// <inheritdoc/>
    internal override poc_async_fn Lend() => LentFunctions.Lend(this);

    /// <summary>
    /// Lends this function through the C ABI and imports it back: every call of the returned
    /// <see cref="ImportedFunction"/> goes through <c>poc_async_fn.call</c> and the exported future's
    /// poll/wake vtable exactly as a Rust or C++ caller's would (C# → C# across the bridge). For
    /// measuring the bridge's own cost from C#, or testing a function the way native callers see it;
    /// to call it in-process, await the body directly instead.
    /// </summary>
    /// <returns>The imported function; dispose it to release the lent function (exactly once).</returns>
    public ImportedFunction ImportThroughAbi() => new(Lend(), Name);

    private static async ValueTask<Message> DelayedSquare(ulong x, TimeSpan delay, CancellationToken cancellationToken)
    {
        await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        return SquareOf(x);
    }

    /// <summary>The square semantics shared by every runtime.</summary>
    internal static Message SquareOf(ulong x)
    {
        if (x == ulong.MaxValue)
            throw new InvalidOperationException($"square({x}) fails on purpose (the containment example)");
        if (x > uint.MaxValue) throw new RemoteCallException("square", 400, "overflow");
        return new Message(x * x);
    }
}
