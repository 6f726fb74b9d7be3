namespace Poc.Bridge.Agents;

/// <summary>
/// What an agent has done so far: the counters of its <see cref="AgentReport"/>. Written only by
/// the agent's own body (one flow of awaits, never two threads at once); read once the body ended.
/// </summary>
internal sealed class AgentTally
{
    /// <summary>Messages sent, received or echoed.</summary>
    internal ulong Messages;

    /// <summary>Wrapping sum of their checksums.</summary>
    internal ulong Checksum;

    /// <summary>Consumer: messages out of per-stream order or with a broken payload.</summary>
    internal ulong OrderErrors;

    /// <summary>Counts one message with checksum <paramref name="checksum"/>.</summary>
    internal void Count(ulong checksum)
    {
        Messages++;
        Checksum = unchecked(Checksum + checksum);
    }

    /// <summary>The report for an agent that ended with <paramref name="status"/>.</summary>
    internal AgentReport ToReport(Status status) => new(status, Messages, Checksum, OrderErrors);
}
