using System.Threading.Channels;
using Poc.Bridge.Agents;
using Poc.Bridge.Export;
using Poc.Bridge.Interop;

namespace Poc.Bridge;

/// <summary>
/// The .NET runtime as the bridge sees it: it exports bounded <c>System.Threading.Channels</c>
/// channels as ports that C++ and Rust (and .NET itself) can use, and runs agents on the thread pool
/// against ports of any runtime.
/// </summary>
/// <remarks>
/// <para>Exported ports follow every rule of bridge.h: completions run exactly once on the thread
/// pool, never under a lock and never inline; handles are generation-checked; cancellation is exact
/// (<c>Export/ExportChannel.cs</c> explains how).</para>
/// <para>Shutdown (<see cref="ShutdownAsync"/>, also <see cref="DisposeAsync"/>): every pending op on
/// this runtime's ports completes with <see cref="Status.Shutdown"/>, later calls on them answer
/// SHUTDOWN (release stays valid, also after disposal), and its agents stop and report SHUTDOWN.</para>
/// <para>Agents (<see cref="RunProducerAsync"/>, <see cref="RunConsumerAsync"/>,
/// <see cref="RunEchoAsync"/>) run on the thread pool against ports of any runtime, through the
/// import adapters (<see cref="SenderPort.ToWriter"/>, <see cref="ReceiverPort.ToReader"/>), and
/// behave like the C++ and Rust agents (bridge.h "Agents"): they take ownership of their ports and
/// release them before their task completes with the report; a cancelled token ends them with
/// <see cref="Status.Cancelled"/>, this runtime's shutdown with <see cref="Status.Shutdown"/>, a
/// failing port op with its status (e.g. <see cref="Status.Closed"/> for a producer whose receiver
/// went away). Starting an agent after shutdown throws <see cref="InteropException"/> and takes
/// no port.</para>
/// <para>Thread safety: every member may be called concurrently from any thread.</para>
/// </remarks>
public sealed class DotNetRuntime : IBridgeRuntime
{
    private readonly ExportScope _scope = new();
    private readonly CancellationTokenSource _stopAgents = new();
    private readonly Lock _lock = new();
    private int _runningAgents;                 // guarded by _lock
    private TaskCompletionSource? _agentsEnded; // set by shutdown while agents run; guarded by _lock
    private TaskCompletionSource? _shutdown;    // set once, under _lock: no agent starts after that

    /// <summary>".NET".</summary>
    public string Name => ".NET";

    /// <summary>True once <see cref="ShutdownAsync"/> began.</summary>
    public bool IsShutdown => _scope.IsStopping;

    /// <summary>Creates a bounded channel owned by this runtime and exports both ends as ports.</summary>
    /// <param name="capacity">Messages the channel holds (at least 1).</param>
    /// <param name="maxPayload">Largest payload accepted, in bytes; 0 means the 16 MiB default.
    /// A larger send is answered with INVALID.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is below 1 or
    /// <paramref name="maxPayload"/> is negative.</exception>
    /// <exception cref="InteropException">The runtime is shut down.</exception>
    public unsafe (SenderPort Sender, ReceiverPort Receiver) CreateChannel(int capacity, int maxPayload = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxPayload);
        int status = _scope.CreateChannel(capacity, maxPayload, out poc_sender tx, out poc_receiver rx);
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, "create a .NET channel");
        return (new SenderPort(tx), new ReceiverPort(rx));
    }

    /// <summary>Runs a producer agent on the thread pool: sends <paramref name="count"/> messages of
    /// stream <paramref name="stream"/> (ids <c>MakeId(stream, seq)</c>, pattern payloads of
    /// <paramref name="payloadLength"/> bytes), awaiting each send. Works with a port of any runtime.
    /// Takes ownership of <paramref name="sender"/> and releases it when the agent ends (which closes
    /// the channel if it was the last sender). The task completes with the agent's report once the
    /// port was released; it does not fault (a failure is the report's status).</summary>
    /// <exception cref="InteropException">The runtime is shut down (the port was not taken).</exception>
    /// <exception cref="ObjectDisposedException">The port was released or handed over already.</exception>
    public Task<AgentReport> RunProducerAsync(SenderPort sender, ulong stream, ulong count, int payloadLength,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sender);
        ArgumentOutOfRangeException.ThrowIfNegative(payloadLength);
        EnterAgent();
        ChannelWriter<Message> writer;
        try
        {
            writer = sender.ToWriter();
        }
        catch
        {
            ExitAgent();
            throw;
        }
        return RunAgent((tally, token) => ProducerAgent.RunAsync(writer, stream, count, payloadLength, tally, token),
            () => ((IDisposable)writer).Dispose(), cancellationToken);
    }

    /// <summary>Runs a consumer agent on the thread pool: receives until the channel reports closed,
    /// checking per-stream order and payload patterns. Works with a port of any runtime. Takes
    /// ownership of <paramref name="receiver"/> and releases it when the agent ends.</summary>
    /// <exception cref="InteropException">The runtime is shut down (the port was not taken).</exception>
    /// <exception cref="ObjectDisposedException">The port was released or handed over already.</exception>
    public Task<AgentReport> RunConsumerAsync(ReceiverPort receiver, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        EnterAgent();
        ChannelReader<Message> reader;
        try
        {
            reader = receiver.ToReader();
        }
        catch
        {
            ExitAgent();
            throw;
        }
        return RunAgent((tally, token) => ConsumerAgent.RunAsync(reader, tally, token),
            () => ((IDisposable)reader).Dispose(), cancellationToken);
    }

    /// <summary>Runs an echo agent on the thread pool: sends every message from
    /// <paramref name="receiver"/> back to <paramref name="sender"/>, awaiting each send, until the
    /// receiver reports closed. Takes ownership of both ports and releases them when it ends.</summary>
    /// <exception cref="InteropException">The runtime is shut down (the ports were not taken).</exception>
    /// <exception cref="ObjectDisposedException">A port was released or handed over already (then
    /// neither was taken).</exception>
    public Task<AgentReport> RunEchoAsync(ReceiverPort receiver, SenderPort sender, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        ArgumentNullException.ThrowIfNull(sender);
        ObjectDisposedException.ThrowIf(!receiver.IsOwned, receiver);
        ObjectDisposedException.ThrowIf(!sender.IsOwned, sender);
        EnterAgent();
        ChannelReader<Message> reader;
        ChannelWriter<Message> writer;
        try
        {
            reader = receiver.ToReader();
            writer = sender.ToWriter();
        }
        catch
        {
            ExitAgent();
            throw;
        }
        return RunAgent((tally, token) => EchoAgent.RunAsync(reader, writer, tally, token),
            () =>
            {
                ((IDisposable)writer).Dispose();
                ((IDisposable)reader).Dispose();
            },
            cancellationToken);
    }

    /// <summary>Shuts the runtime down: pending ops on its ports complete with
    /// <see cref="Status.Shutdown"/> and later calls on them answer SHUTDOWN (release stays valid) —
    /// both already done when this method returns; its agents stop and report SHUTDOWN, and the
    /// returned task completes once they have ended and released their ports. Idempotent: every call
    /// returns the same shutdown.</summary>
    public ValueTask ShutdownAsync()
    {
        TaskCompletionSource? mine = null;
        Task shutdown;
        lock (_lock)
        {
            if (_shutdown is null) _shutdown = mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            shutdown = _shutdown.Task;
        }
        if (mine is not null) _ = RunShutdownAsync(mine);
        return new ValueTask(shutdown);
    }

    /// <summary>Same as <see cref="ShutdownAsync"/>.</summary>
    public ValueTask DisposeAsync() => ShutdownAsync();

    /// <summary>Channels of this runtime with at least one live port (for tests).</summary>
    internal int LiveChannelCount => _scope.ChannelCount;

    private async Task RunShutdownAsync(TaskCompletionSource done)
    {
        try
        {
            // 1.–2. Own ports first, synchronously (completions are queued to the thread pool, nothing
            // runs inline): an agent waiting on one of this runtime's channels then ends with SHUTDOWN
            // from the channel itself rather than from its cancellation.
            _scope.Shutdown();
            // 3. Stop the agents: their in-flight ops (on any runtime's ports) are cancelled through
            // the import adapters and complete as usual; each agent then releases its ports and ends.
            await _stopAgents.CancelAsync().ConfigureAwait(false);
            Task? ended = null;
            lock (_lock)
            {
                if (_runningAgents > 0)
                {
                    _agentsEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    ended = _agentsEnded.Task;
                }
            }
            if (ended is not null) await ended.ConfigureAwait(false);
            done.TrySetResult();
        }
        catch (Exception e)
        {
            done.TrySetException(e);
        }
    }

    /// <summary>Counts an agent that is about to start, or throws SHUTDOWN once shutdown began.</summary>
    private void EnterAgent()
    {
        lock (_lock)
        {
            if (_shutdown is not null) throw StatusErrors.ToException((int)Status.Shutdown, "start a .NET agent");
            _runningAgents++;
        }
    }

    private void ExitAgent()
    {
        lock (_lock)
        {
            if (--_runningAgents == 0) _agentsEnded?.TrySetResult();
        }
    }

    /// <summary>Runs an agent body on the thread pool: the body's status (or the status behind its
    /// exception), then the ports are released, then the report completes the task.</summary>
    private Task<AgentReport> RunAgent(Func<AgentTally, CancellationToken, Task<Status>> body, Action releasePorts,
        CancellationToken cancellationToken) =>
        Task.Run(async () =>
        {
            var tally = new AgentTally();
            Status status;
            try
            {
                // Linked to shutdown; _stopAgents is never disposed, so linking is always valid.
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopAgents.Token);
                try
                {
                    status = await body(tally, stop.Token).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    status = AgentStatus.FromException(e, shuttingDown: _scope.IsStopping);
                }
            }
            catch (Exception)
            {
                status = Status.Panic; // contained like a native agent's failure
            }
            finally
            {
                try
                {
                    releasePorts();
                }
                catch (Exception)
                {
                    // The ports' SafeHandles release them at the latest when collected.
                }
                ExitAgent();
            }
            return tally.ToReport(status);
        });
}
