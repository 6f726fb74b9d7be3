using Poc.Bridge.Interop;

namespace Poc.Bridge.Export;

/// <summary>
/// The channels one <see cref="DotNetRuntime"/> exports, and its "stopping" flag: what shutdown
/// needs to reach (bridge.h rule 8).
/// </summary>
/// <remarks>
/// Shutdown: 1. <see cref="IsStopping"/> is set, so every port call that takes a channel's lock
/// from now on answers SHUTDOWN (release excepted) and no op can be registered any more; 2. each
/// live channel completes its pending ops with SHUTDOWN (on the thread pool, exactly once, as
/// always). An op registered before step 1 is found in step 2, because both take the channel's
/// lock. A channel leaves the scope when its last port is released, so a long-lived runtime does
/// not accumulate dead channels.
/// <para>Thread safety: every member may be called concurrently from any thread. <see cref="_lock"/>
/// is never held together with a channel's lock.</para>
/// </remarks>
internal sealed unsafe class ExportScope
{
    private readonly Lock _lock = new();
    private readonly HashSet<ExportChannel> _channels = new(); // guarded by _lock
    private volatile bool _stopping;

    /// <summary>True once shutdown began.</summary>
    internal bool IsStopping => _stopping;

    /// <summary>Creates a channel and exports one sender and one receiver port for it.</summary>
    /// <returns>OK, INVALID (capacity &lt; 1, negative limit) or SHUTDOWN.</returns>
    internal int CreateChannel(int capacity, int maxPayload, out poc_sender sender, out poc_receiver receiver)
    {
        sender = default;
        receiver = default;
        if (capacity < 1 || maxPayload < 0) return (int)Status.Invalid;
        if (maxPayload == 0) maxPayload = NativeMethods.DefaultMaxPayload;
        var channel = new ExportChannel(this, capacity, maxPayload);
        lock (_lock)
        {
            // Checked under the lock that Shutdown takes to snapshot the channels: a channel is
            // either refused here or reached by Shutdown.
            if (_stopping) return (int)Status.Shutdown;
            _channels.Add(channel);
        }
        ulong tx = PortTable.Insert(PortTable.SenderTag, new ExportSenderPort(channel));
        ulong rx;
        try
        {
            rx = PortTable.Insert(PortTable.ReceiverTag, channel);
        }
        catch
        {
            PortTable.Remove(tx, PortTable.SenderTag);
            Forget(channel);
            throw;
        }
        sender = new poc_sender { handle = tx, vtable = ExportVTables.Sender };
        receiver = new poc_receiver { handle = rx, vtable = ExportVTables.Receiver };
        return (int)Status.Ok;
    }

    /// <summary>Marks the scope stopping and completes every pending op of its channels with
    /// SHUTDOWN. Idempotent.</summary>
    internal void Shutdown()
    {
        ExportChannel[] channels;
        lock (_lock)
        {
            _stopping = true;
            channels = [.. _channels];
        }
        foreach (ExportChannel channel in channels) channel.CompletePending(Status.Shutdown);
    }

    /// <summary>A channel whose ports were all released leaves the scope.</summary>
    internal void Forget(ExportChannel channel)
    {
        lock (_lock) _channels.Remove(channel);
    }

    /// <summary>Channels with at least one live port (for tests).</summary>
    internal int ChannelCount
    {
        get { lock (_lock) return _channels.Count; }
    }
}
