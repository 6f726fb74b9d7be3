using System.Threading.Channels;

namespace Poc.Bridge.Agents;

/// <summary>The echo agent's body (bridge.h "Agents"): sends every received message back
/// unchanged, awaiting each send, until its input reports closed.</summary>
internal static class EchoAgent
{
    /// <summary>Echoes until the input is closed (then OK). A failing receive or send throws.</summary>
    internal static async Task<Status> RunAsync(ChannelReader<Message> reader, ChannelWriter<Message> writer,
        AgentTally tally, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Message m;
            try
            {
                m = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (ChannelClosedException e) when (e.InnerException is null)
            {
                return Status.Ok;
            }
            // Checked again: a stop that arrived while nothing was in flight must not be missed by a
            // send that could wait for room forever.
            cancellationToken.ThrowIfCancellationRequested();
            ulong sum = m.Checksum();
            await writer.WriteAsync(m, cancellationToken).ConfigureAwait(false);
            tally.Count(sum);
        }
    }
}
