using Poc.Bridge.Interop;

namespace Poc.Bridge.Native;

/// <summary>
/// What <see cref="CppRuntime"/> and <see cref="RustRuntime"/> share: a native runtime object
/// (<c>poc_*_runtime_new</c>), its channels, its agents, its shutdown and its free.
/// </summary>
/// <remarks>
/// <para>Every native call holds a reference on <see cref="NativeRuntimeHandle"/>, so a call racing
/// with <see cref="DisposeAsync"/> either runs against a live runtime or throws
/// <see cref="ObjectDisposedException"/> — the runtime is freed only after the last call left.</para>
/// <para>Agents: the ports are taken with <c>TakeOwnership</c> before the start call and given back
/// with <c>ReturnOwnership</c> when it fails (bridge.h: on an error the ports were not taken). The
/// done callback completes the agent's task with its report, also when it was cancelled (status
/// <see cref="Status.Cancelled"/>) or stopped by shutdown; a cancellation token fires
/// <c>poc_*_agent_cancel</c> (a request: the report still comes).</para>
/// <para>Thread safety: every member may be called concurrently from any thread.</para>
/// </remarks>
internal sealed class NativeRuntime
{
    private const int MaxThreads = 64;

    private readonly NativeRuntimeApi _api;
    private readonly NativeRuntimeHandle _handle;
    private Task? _shutdown; // set once

    internal unsafe NativeRuntime(NativeRuntimeApi api, int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threads, MaxThreads);
        _api = api;
        nint runtime = 0;
        int status = api.RuntimeNew((uint)threads, &runtime);
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, $"start a {api.Name} runtime with {threads} threads");
        _handle = new NativeRuntimeHandle(runtime, api);
    }

    internal string Name => _api.Name;

    internal bool IsShutdown => Volatile.Read(ref _shutdown) is not null || _handle.IsClosed;

    internal unsafe (SenderPort Sender, ReceiverPort Receiver) CreateChannel(int capacity, int maxPayload)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxPayload);
        poc_sender tx;
        poc_receiver rx;
        int status;
        nint runtime = Enter();
        try
        {
            status = _api.ChannelNew(runtime, (nuint)capacity, (nuint)maxPayload, &tx, &rx);
        }
        finally
        {
            _handle.DangerousRelease();
        }
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, $"create a {Name} channel");
        return (new SenderPort(tx), new ReceiverPort(rx));
    }

    internal unsafe Task<AgentReport> RunProducer(SenderPort sender, ulong stream, ulong count, int payloadLength,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sender);
        ArgumentOutOfRangeException.ThrowIfNegative(payloadLength);
        poc_sender tx = sender.TakeOwnership();
        return StartAgent(
            (runtime, user, id) => _api.ProducerStart(runtime, tx, stream, count, (nuint)payloadLength,
                AgentCompletion.DoneFunction, user, id),
            sender.ReturnOwnership, $"start a producer agent on the {Name} runtime", cancellationToken);
    }

    /// <summary>The C++ runtime's mayon timer task (poc_cpp_timer_start); C++ only.</summary>
    internal unsafe Task<AgentReport> RunTimer(SenderPort sender, uint intervalMs, ulong maxCount,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sender);
        if (_api != NativeRuntimeApi.Cpp) throw new NotSupportedException($"The {Name} runtime has no timer agent.");
        poc_sender tx = sender.TakeOwnership();
        return StartAgent(
            (runtime, user, id) => NativeMethods.poc_cpp_timer_start(runtime, tx, intervalMs, maxCount,
                AgentCompletion.DoneFunction, user, id),
            sender.ReturnOwnership, "start the timer agent on the C++ runtime", cancellationToken);
    }

    internal unsafe Task<AgentReport> RunConsumer(ReceiverPort receiver, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        poc_receiver rx = receiver.TakeOwnership();
        return StartAgent(
            (runtime, user, id) => _api.ConsumerStart(runtime, rx, AgentCompletion.DoneFunction, user, id),
            receiver.ReturnOwnership, $"start a consumer agent on the {Name} runtime", cancellationToken);
    }

    internal unsafe Task<AgentReport> RunEcho(ReceiverPort receiver, SenderPort sender, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        ArgumentNullException.ThrowIfNull(sender);
        poc_receiver rx = receiver.TakeOwnership();
        poc_sender tx;
        try
        {
            tx = sender.TakeOwnership();
        }
        catch
        {
            receiver.ReturnOwnership();
            throw;
        }
        return StartAgent(
            (runtime, user, id) => _api.EchoStart(runtime, rx, tx, AgentCompletion.DoneFunction, user, id),
            () =>
            {
                receiver.ReturnOwnership();
                sender.ReturnOwnership();
            },
            $"start an echo agent on the {Name} runtime", cancellationToken);
    }

    /// <summary>One <c>poc_*_*_start</c> call: (runtime, user, &amp;id) → status.</summary>
    private unsafe delegate int AgentStartCall(nint runtime, void* user, ulong* id);

    /// <summary>Starts an agent whose ports the caller has already taken out of their wrappers:
    /// calls <paramref name="start"/> inside the runtime handle's reference, and on any status but
    /// OK (bridge.h: the ports were not taken, done will not run) gives the ports back with
    /// <paramref name="giveBack"/>, forgets the completion and throws; on OK returns the task of the
    /// agent's report (its done callback, exactly once).</summary>
    private unsafe Task<AgentReport> StartAgent(AgentStartCall start, Action giveBack, string what,
        CancellationToken cancellationToken)
    {
        AgentCompletion agent = AgentCompletion.Create();
        ulong id = 0;
        int status = -1;
        try
        {
            nint runtime = Enter();
            try
            {
                status = start(runtime, agent.User, &id);
            }
            finally
            {
                _handle.DangerousRelease();
            }
        }
        finally
        {
            if (status != (int)Status.Ok)
            {
                agent.Abandon();
                giveBack();
            }
        }
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, what);
        return AwaitAgentAsync(agent, id, cancellationToken);
    }

    /// <summary>Runs <c>poc_*_runtime_shutdown</c> once, on the thread pool (it joins the runtime's
    /// threads, so it must not block the caller's context). Later calls get the same task.</summary>
    internal ValueTask ShutdownAsync()
    {
        Task? shutdown = Volatile.Read(ref _shutdown);
        if (shutdown is null)
        {
            var mine = new Task(ShutdownCore);
            shutdown = Interlocked.CompareExchange(ref _shutdown, mine, null) ?? mine;
            if (shutdown == mine) mine.Start(TaskScheduler.Default);
        }
        return new ValueTask(shutdown);
    }

    /// <summary>Shuts down, then frees the runtime once no call is inside it.</summary>
    internal async ValueTask DisposeAsync()
    {
        try
        {
            await ShutdownAsync().ConfigureAwait(false);
        }
        finally
        {
            _handle.Dispose();
        }
    }

    private unsafe void ShutdownCore()
    {
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            return; // freed already, and free shuts down
        }
        int status;
        try
        {
            status = _api.RuntimeShutdown(_handle.DangerousGetHandle());
        }
        finally
        {
            if (added) _handle.DangerousRelease();
        }
        if (status != (int)Status.Ok) throw StatusErrors.ToException(status, $"shut down the {Name} runtime");
    }

    private async Task<AgentReport> AwaitAgentAsync(AgentCompletion agent, ulong id, CancellationToken cancellationToken)
    {
        // Registered after the start: a token that fired already cancels the agent at once. The
        // agent may have ended before; agent_cancel of an ended agent is a harmless request.
        using CancellationTokenRegistration registration = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(_ => CancelAgent(id), null)
            : default;
        return await agent.Task.ConfigureAwait(false);
    }

    private unsafe void CancelAgent(ulong id)
    {
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            _api.AgentCancel(_handle.DangerousGetHandle(), id); // POC_OK also for an ended agent
        }
        catch (ObjectDisposedException)
        {
            // Freed: free shut the runtime down, which ended its agents.
        }
        finally
        {
            if (added) _handle.DangerousRelease();
        }
    }

    /// <summary>Releases the reference taken by <see cref="Enter"/>.</summary>
    internal void Leave() => _handle.DangerousRelease();

    /// <summary>Takes a reference for one call; the caller releases it (<see cref="Leave"/>).
    /// Internal for the async calls that take a runtime (RustCalls.SyncAllAsync).</summary>
    internal nint Enter()
    {
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            throw new ObjectDisposedException($"{Name} runtime", $"The {Name} runtime was disposed.");
        }
        return _handle.DangerousGetHandle();
    }
}
