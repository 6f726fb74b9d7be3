using Poc.Bridge.Native;

namespace Poc.Bridge;

/// <summary>
/// The C++ runtime: an <c>asio::io_context</c> run by threads the native library owns
/// (bridge.h <c>poc_cpp_runtime_*</c>). It owns <c>asio::experimental::concurrent_channel</c>
/// channels exported as ports, and runs C++ agents against ports of any runtime.
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
public sealed class CppRuntime : IBridgeRuntime
{
    private readonly NativeRuntime _runtime;

    /// <summary>Starts a C++ runtime with <paramref name="threads"/> io_context threads.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="threads"/> is not in 1..64.</exception>
    public CppRuntime(int threads = 1) => _runtime = new NativeRuntime(NativeRuntimeApi.Cpp, threads);

    /// <summary>The native runtime (its handle, for the async calls that need it: CppCalls.DelayedSquareAsync).</summary>
    internal NativeRuntime Native => _runtime;

    /// <summary>"C++".</summary>
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

    /// <summary>Runs mayon's timer task on this runtime (bridge.h <c>poc_cpp_timer_start</c>): every
    /// <paramref name="interval"/> an <c>asio::steady_timer</c> fires and the task sends
    /// <c>{count, "From Cpp async task!!"}</c> (count from 0) to <paramref name="sender"/>, awaiting
    /// each send (so a full channel paces it), until <paramref name="maxCount"/> messages were sent
    /// (0: until cancelled) or a send fails. Takes ownership of <paramref name="sender"/> (released
    /// when the task ends, which closes a channel whose last sender it was). Completes when the task
    /// ends; cancelling <paramref name="cancellationToken"/> stops it (report status
    /// <see cref="Status.Cancelled"/>, <see cref="AgentReport.Messages"/> = what it sent).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="interval"/> is negative or over
    /// <see cref="uint.MaxValue"/> ms.</exception>
    /// <exception cref="InteropException">The runtime is shut down; <paramref name="sender"/> is still the caller's.</exception>
    public Task<AgentReport> RunTimerAsync(SenderPort sender, TimeSpan interval, ulong maxCount = 0,
        CancellationToken cancellationToken = default) =>
        _runtime.RunTimer(sender, CppCalls.ToMilliseconds(interval), maxCount, cancellationToken);

    /// <summary>Shuts the runtime down (on the thread pool: it joins the io_context threads): pending
    /// ops on its ports complete with <see cref="Status.Shutdown"/>, its agents stop. Idempotent.</summary>
    public ValueTask ShutdownAsync() => _runtime.ShutdownAsync();

    /// <summary>Shuts down, then frees the native runtime.</summary>
    public ValueTask DisposeAsync() => _runtime.DisposeAsync();
}
