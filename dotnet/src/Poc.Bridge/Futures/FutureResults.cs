using System.Runtime.CompilerServices;

namespace Poc.Bridge.Futures;

/// <summary>The slow path of mapping a future's value (outside the unsafe facade: no await there).</summary>
internal static class FutureResults
{
    /// <summary>Awaits <paramref name="call"/> and maps its value.</summary>
    /// <remarks>Runs only when the call did not finish synchronously, i.e. once per call that waits for
    /// another runtime; its state machine box is pooled (<see cref="PoolingAsyncValueTaskMethodBuilder{TResult}"/>),
    /// so such a call allocates nothing here either (without it: one box, ~190 B, per call — found by the
    /// benchmark's allocations per async call).</remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    internal static async ValueTask<T> AwaitAndMap<T>(ValueTask<Message> call, Func<Message, T> map) =>
        map(await call.ConfigureAwait(false));
}
