namespace Poc.Bridge.Export;

/// <summary>
/// What one exported sender handle names: its channel, and whether the port was released. The
/// receiver handle names the <see cref="ExportChannel"/> itself (a channel has one receiver port).
/// </summary>
internal sealed class ExportSenderPort(ExportChannel channel)
{
    /// <summary>The channel this port sends into.</summary>
    internal ExportChannel Channel { get; } = channel;

    /// <summary>Set by release under the channel's lock, which every op of the port takes: a call
    /// that resolved the handle just before the release then fails instead of registering an op
    /// the release could no longer cancel. Guarded by the channel's lock.</summary>
    internal bool Released;
}
