using Poc.Bridge.Native;

namespace Poc.Bridge;

/// <summary>
/// The Rust runtime: a tokio multi-thread runtime owned by the native library
/// (bridge.h <c>poc_rust_runtime_*</c>). It owns bounded <c>tokio::sync::mpsc</c>
/// channels exported as ports, and runs Rust agents against ports of any runtime.
/// </summary>
/// <remarks>
/// <para>Agents take ownership of the ports given to them; if the start fails (the method throws),
/// the ports stay with the caller. An agent's task completes with its report — also when it was
/// cancelled through the token (<see cref="Status.Cancelled"/>) or stopped by shutdown.</para>
/// <para>After <see cref="ShutdownAsync"/>, creating channels or starting agents throws
/// <see cref="InteropException"/> with <see cref="Status.Shutdown"/>; after
/// <see cref="DisposeAsync"/>, <see cref="ObjectDisposedException"/>. Ports handed out stay safe to
/// release after both.</para>
/// <para>Thread safety: every member may be called concurrently from any thread.</para>
/// </remarks>
public sealed class RustRuntime : IBridgeRuntime
{
    private readonly NativeRuntime _runtime;

    /// <summary>Starts a Rust runtime with <paramref name="threads"/> tokio worker threads.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="threads"/> is not in 1..64.</exception>
    public RustRuntime(int threads = 1) => _runtime = new NativeRuntime(NativeRuntimeApi.Rust, threads);

    /// <summary>The native runtime (its handle, for the async calls that need it: RustCalls.SyncAllAsync).</summary>
    internal NativeRuntime Native => _runtime;

    /// <summary>"Rust".</summary>
    public string Name => _runtime.Name;

    /// <summary>True once <see cref="ShutdownAsync"/> or <see cref="DisposeAsync"/> began.</summary>
    public bool IsShutdown => _runtime.IsShutdown;

    /// <inheritdoc/>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is below 1 or
    /// <paramref name="maxPayload"/> is negative.</exception>
    /// <exception cref="InteropException">The runtime is shut down.</exception>
    public (SenderPort Sender, ReceiverPort Receiver) CreateChannel(int capacity, int maxPayload = 0) =>
        _runtime.CreateChannel(capacity, maxPayload);

    /// <inheritdoc/>
    /// <exception cref="InteropException">The runtime is shut down; <paramref name="sender"/> is still the caller's.</exception>
    public Task<AgentReport> RunProducerAsync(SenderPort sender, ulong stream, ulong count, int payloadLength,
        CancellationToken cancellationToken = default) =>
        _runtime.RunProducer(sender, stream, count, payloadLength, cancellationToken);

    /// <inheritdoc/>
    /// <exception cref="InteropException">The runtime is shut down; <paramref name="receiver"/> is still the caller's.</exception>
    public Task<AgentReport> RunConsumerAsync(ReceiverPort receiver, CancellationToken cancellationToken = default) =>
        _runtime.RunConsumer(receiver, cancellationToken);

    /// <inheritdoc/>
    /// <exception cref="InteropException">The runtime is shut down; both ports are still the caller's.</exception>
    public Task<AgentReport> RunEchoAsync(ReceiverPort receiver, SenderPort sender, CancellationToken cancellationToken = default) =>
        _runtime.RunEcho(receiver, sender, cancellationToken);

    /// <summary>Shuts the runtime down (on the thread pool: it joins the worker threads): pending
    /// ops on its ports complete with <see cref="Status.Shutdown"/>, its agents stop. Idempotent.</summary>
    public ValueTask ShutdownAsync() => _runtime.ShutdownAsync();

    /// <summary>Shuts down, then frees the native runtime.</summary>
    public ValueTask DisposeAsync() => _runtime.DisposeAsync();
}
