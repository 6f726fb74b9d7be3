namespace Poc.Bridge;

/// <summary>
/// One of the three runtimes as the bridge sees it: it can own a channel (exported as ports) and
/// run agents against any ports. <c>CppRuntime</c>, <c>RustRuntime</c> and
/// <c>DotNetRuntime</c> implement it, so a test or scenario can combine any producer,
/// channel owner and consumer.
/// </summary>
public interface IBridgeRuntime : IAsyncDisposable
{
    /// <summary>Short name: "C++", "Rust" or ".NET".</summary>
    string Name { get; }

    /// <summary>Creates a bounded channel owned by this runtime and exports both ends as ports.</summary>
    /// <param name="capacity">Messages the channel holds (at least 1).</param>
    /// <param name="maxPayload">Largest payload accepted, in bytes; 0 means the 16 MiB default.</param>
    (SenderPort Sender, ReceiverPort Receiver) CreateChannel(int capacity, int maxPayload = 0);

    /// <summary>Runs a producer agent on this runtime: sends <paramref name="count"/> messages of
    /// stream <paramref name="stream"/> with <paramref name="payloadLength"/>-byte payloads, awaiting
    /// each send. Takes ownership of <paramref name="sender"/>. Completes when the agent ends.</summary>
    Task<AgentReport> RunProducerAsync(SenderPort sender, ulong stream, ulong count, int payloadLength,
        CancellationToken cancellationToken = default);

    /// <summary>Runs a consumer agent on this runtime: receives until the channel reports closed,
    /// checking per-stream order and payloads. Takes ownership of <paramref name="receiver"/>.</summary>
    Task<AgentReport> RunConsumerAsync(ReceiverPort receiver, CancellationToken cancellationToken = default);

    /// <summary>Runs an echo agent: sends every message from <paramref name="receiver"/> back to
    /// <paramref name="sender"/> until the receiver reports closed. Takes ownership of both.</summary>
    Task<AgentReport> RunEchoAsync(ReceiverPort receiver, SenderPort sender, CancellationToken cancellationToken = default);

    /// <summary>Shuts the runtime down: pending operations on its ports complete with
    /// <see cref="Status.Shutdown"/>, its agents stop. Idempotent.</summary>
    ValueTask ShutdownAsync();
}
