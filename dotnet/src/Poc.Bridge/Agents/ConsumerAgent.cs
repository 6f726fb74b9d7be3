using System.Threading.Channels;

namespace Poc.Bridge.Agents;

/// <summary>The consumer agent's body (bridge.h "Agents"): receives until the channel reports
/// closed, checking that every stream's seq starts at 0 and follows the previous one and that the
/// payload follows the producer pattern; each message that does not counts one order error.</summary>
internal static class ConsumerAgent
{
    /// <summary>Receives until closed (then OK). A receive that fails otherwise throws.</summary>
    internal static async Task<Status> RunAsync(ChannelReader<Message> reader, AgentTally tally,
        CancellationToken cancellationToken)
    {
        var nextSeq = new Dictionary<ulong, ulong>(); // stream → expected seq
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
                return Status.Ok; // closed and drained
            }
            tally.Count(m.Checksum());
            ulong stream = m.Id >> MessageChecksum.StreamShift;
            ulong seq = m.Id & MessageChecksum.SeqMask;
            ulong expected = nextSeq.GetValueOrDefault(stream);
            if (seq != expected || !MessageChecksum.CheckPattern(m.Id, m.Payload.Span)) tally.OrderErrors++;
            nextSeq[stream] = seq + 1;
        }
    }
}
