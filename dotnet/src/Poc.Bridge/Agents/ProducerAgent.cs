using System.Threading.Channels;

namespace Poc.Bridge.Agents;

/// <summary>The producer agent's body (bridge.h "Agents"): <c>count</c> messages of one stream,
/// ids <c>MakeId(stream, seq)</c> from seq 0, payload bytes <c>(byte)(id + i)</c>, awaiting every
/// send — so the messages arrive in order (bridge.h rule 6).</summary>
internal static class ProducerAgent
{
    /// <summary>Sends the messages; returns OK when all were sent. A send that fails throws (the
    /// runner maps the exception to the status that stopped the agent).</summary>
    internal static async Task<Status> RunAsync(ChannelWriter<Message> writer, ulong stream, ulong count,
        int payloadLength, AgentTally tally, CancellationToken cancellationToken)
    {
        for (ulong seq = 0; seq < count; seq++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ulong id = MessageChecksum.MakeId(stream, seq);
            // One byte[] per message (none when empty): the payload must stay untouched until the
            // send completed, and the consumer may be in another runtime.
            byte[] payload = payloadLength == 0 ? Array.Empty<byte>() : new byte[payloadLength];
            MessageChecksum.FillPattern(id, payload);
            var message = new Message(id, payload);
            ulong sum = message.Checksum();
            await writer.WriteAsync(message, cancellationToken).ConfigureAwait(false);
            tally.Count(sum);
        }
        return Status.Ok;
    }
}
