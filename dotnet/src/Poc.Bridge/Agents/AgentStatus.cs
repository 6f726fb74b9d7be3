using System.Threading.Channels;

namespace Poc.Bridge.Agents;

/// <summary>The status an agent reports when its body ended with an exception: the bridge status
/// behind the exception the import adapters threw (docs/contract.md; as the native agents report
/// the status that stopped them).</summary>
internal static class AgentStatus
{
    /// <summary>Maps <paramref name="e"/>; <paramref name="shuttingDown"/> turns a cancellation into
    /// SHUTDOWN (the runtime stopped the agent) rather than CANCELLED (the caller's token).</summary>
    internal static Status FromException(Exception e, bool shuttingDown) => e switch
    {
        OperationCanceledException => shuttingDown ? Status.Shutdown : Status.Cancelled,
        ChannelClosedException { InnerException: { } inner } => FromException(inner, shuttingDown),
        ChannelClosedException => Status.Closed,
        InteropException interop => interop.Status,
        // A port released under the agent: only its own runtime's shutdown does that to an agent.
        ObjectDisposedException => shuttingDown ? Status.Shutdown : Status.Panic,
        ArgumentException => Status.Invalid,
        _ => Status.Panic,
    };
}
