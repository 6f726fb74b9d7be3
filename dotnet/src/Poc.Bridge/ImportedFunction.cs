using Poc.Bridge.Futures;
using Poc.Bridge.Interop;

namespace Poc.Bridge;

/// <summary>
/// An async function that native code lent to .NET (a bridge.h <c>poc_async_fn</c>), owned by this
/// instance: <see cref="CallAsync"/> starts a call and awaits its <c>poc_future</c>. Made by
/// <see cref="RustCalls.SquareFunction"/> and <see cref="CppCalls.SquareFunction"/>.
/// </summary>
/// <remarks>
/// <para>Each call is awaited like the other async calls (<see cref="RustCalls"/>): the first poll
/// runs on the caller's thread, so a call that finishes at once returns a completed ValueTask;
/// otherwise the callee's wake queues the next poll on the thread pool. Errors: <c>POC_ERROR</c> →
/// <see cref="RemoteCallException"/> (code and message), <c>POC_PANIC</c> →
/// <see cref="InteropException"/> (<see cref="Status.Panic"/>, with the callee's message), a
/// cancelled token → <see cref="OperationCanceledException"/>, the lender's runtime stopping while
/// the call runs → <see cref="InteropException"/> (<see cref="Status.Shutdown"/>). A call that
/// cannot start (the lender's runtime is shut down, the lender failed) throws at the call.</para>
/// <para><see cref="Dispose"/> gives the function back (<c>release</c>) exactly once; calls already
/// started go on. Handing the instance to a function that takes a <see cref="AsyncFunction"/>
/// (<see cref="RustCalls.SumCallsAsync"/>, <see cref="CppCalls.SumCallsAsync"/>) transfers the
/// ownership: the instance is disposed by that and later uses throw
/// <see cref="ObjectDisposedException"/>. If a call is being started on another thread at that
/// moment, the transfer waits for it to return (a call never waits for its work).</para>
/// <para>Thread safety: any thread, concurrently.</para>
/// </remarks>
public sealed unsafe class ImportedFunction : AsyncFunction, IDisposable
{
    private const int DisposedBit = 1 << 30;
    private const int TransferredBit = 1 << 29;
    private const int UsersMask = TransferredBit - 1;

    private readonly poc_async_fn _function;
    private int _state; // callers inside `call` (UsersMask) | DisposedBit | TransferredBit

    /// <summary>Takes ownership of <paramref name="function"/>.</summary>
    internal ImportedFunction(poc_async_fn function, string name) : base(name)
    {
        if (function.call == null || function.release == null)
            throw new InteropException(Status.Invalid, $"The lent function {name} has no call or no release function");
        _function = function;
    }

    /// <summary>True once disposed or handed over.</summary>
    public bool IsDisposed => (Volatile.Read(ref _state) & DisposedBit) != 0;

    /// <summary>Calls the function with <paramref name="argument"/> and awaits the call's outcome.</summary>
    /// <param name="argument">The argument (copied by the callee before this returns).</param>
    /// <param name="cancellationToken">Cancels the call's future (the callee stops its work).</param>
    /// <returns>The call's value.</returns>
    /// <exception cref="ObjectDisposedException">Disposed or handed over.</exception>
    /// <exception cref="InteropException">The call could not start: <see cref="Status.Shutdown"/>
    /// (the lender's runtime is stopping) or <see cref="Status.Panic"/> (the lender failed).</exception>
    /// <exception cref="ArgumentException">The callee rejected the argument (<c>POC_INVALID</c>).</exception>
    public ValueTask<Message> CallAsync(Message argument, CancellationToken cancellationToken = default)
    {
        poc_future future;
        int status;
        Enter();
        try
        {
            ReadOnlySpan<byte> payload = argument.Payload.Span;
            fixed (byte* data = payload)
            {
                var view = new poc_message_view { id = argument.Id, data = data, len = (nuint)payload.Length };
                status = _function.call(_function.context, &view, &future);
            }
        }
        finally
        {
            Leave();
        }
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, $"start a call of {Name}");
        return FutureOperation.Run(future, Name, null, cancellationToken);
    }

    /// <summary>The "square" convention: calls with <c>{id = <paramref name="x"/>}</c> and returns
    /// the value's id.</summary>
    /// <param name="x">The argument's id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The value's id (x * x for the square functions).</returns>
    /// <exception cref="ObjectDisposedException">Disposed or handed over.</exception>
    /// <exception cref="InteropException">The call could not start (see <see cref="CallAsync"/>).</exception>
    public ValueTask<ulong> SquareAsync(ulong x, CancellationToken cancellationToken = default) =>
        RustCalls.Map(CallAsync(new Message(x), cancellationToken), static m => m.Id);

    /// <summary>Gives the function back to its lender (once; later calls do nothing). A call being
    /// started on another thread finishes starting first; calls already started go on.</summary>
    public void Dispose()
    {
        int state = Volatile.Read(ref _state);
        while (true)
        {
            if ((state & DisposedBit) != 0) return;
            int seen = Interlocked.CompareExchange(ref _state, state | DisposedBit, state);
            if (seen == state) break;
            state = seen;
        }
        if ((state & UsersMask) == 0) ReleaseNative(); // else the last Leave releases it
    }

    /// <summary>Hands the function over to native code that takes it (and releases it); this
    /// instance is disposed from now on.</summary>
    internal override poc_async_fn Lend()
    {
        int state = Volatile.Read(ref _state);
        while (true)
        {
            ObjectDisposedException.ThrowIf((state & DisposedBit) != 0, this);
            int seen = Interlocked.CompareExchange(ref _state, state | DisposedBit | TransferredBit, state);
            if (seen == state) break;
            state = seen;
        }
        // A call that another thread is starting right now still uses the function: let it return
        // from `call` (which never waits for the work) before the new owner may release it.
        var spin = new SpinWait();
        while ((Volatile.Read(ref _state) & UsersMask) != 0) spin.SpinOnce();
        return _function;
    }

    private void Enter()
    {
        int state = Volatile.Read(ref _state);
        while (true)
        {
            ObjectDisposedException.ThrowIf((state & DisposedBit) != 0, this);
            int seen = Interlocked.CompareExchange(ref _state, state + 1, state);
            if (seen == state) return;
            state = seen;
        }
    }

    private void Leave()
    {
        // Disposed (not handed over) while calls were starting: the last one out releases.
        if (Interlocked.Decrement(ref _state) == DisposedBit) ReleaseNative();
    }

    private void ReleaseNative() => _function.release(_function.context);
}
