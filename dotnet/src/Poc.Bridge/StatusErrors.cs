using System.Threading.Channels;

namespace Poc.Bridge;

/// <summary>Turns a bridge.h status into the exception a .NET developer expects.</summary>
internal static class StatusErrors
{
    /// <summary>Closed → <see cref="ChannelClosedException"/>, Cancelled →
    /// <see cref="OperationCanceledException"/>, Invalid → <see cref="ArgumentException"/>,
    /// anything else → <see cref="InteropException"/>. <paramref name="what"/> says what was being done.</summary>
    internal static Exception ToException(int status, string what, CancellationToken token = default) =>
        (Status)status switch
        {
            Status.Closed => new ChannelClosedException($"Could not {what}: the channel is closed."),
            Status.Cancelled => new OperationCanceledException($"Could not {what}: the operation was cancelled.", token),
            Status.Invalid => new ArgumentException(
                $"Could not {what}: INVALID (a released, stale or foreign handle, an oversized payload, or a call in the wrong state)."),
            _ => new InteropException((Status)status, $"Could not {what}"),
        };
}
