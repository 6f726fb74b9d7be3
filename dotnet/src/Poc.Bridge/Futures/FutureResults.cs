namespace Poc.Bridge.Futures;

/// <summary>The slow path of mapping a future's value (outside the unsafe facade: no await there).</summary>
internal static class FutureResults
{
    /// <summary>Awaits <paramref name="call"/> and maps its value.</summary>
    internal static async ValueTask<T> AwaitAndMap<T>(ValueTask<Message> call, Func<Message, T> map) =>
        map(await call.ConfigureAwait(false));
}
