using System.Threading.Channels;
using Poc.Bridge.Import;

namespace Poc.Bridge;

public sealed partial class ReceiverPort
{
    /// <summary>
    /// Imports this port as a <see cref="ChannelReader{T}"/>: <c>await foreach (var m in
    /// reader.ReadAllAsync(ct))</c> yields messages until the channel is closed and drained.
    /// Cancelling a read never loses a message (one that arrives anyway is kept for the next read).
    /// Takes ownership of the port: the reader releases it once the channel reports closed (or its
    /// runtime shut down), or when it is disposed — the returned reader implements
    /// <see cref="IDisposable"/>; disposing closes the channel from the receiving side.
    /// </summary>
    /// <exception cref="ObjectDisposedException">This port was released or handed over already.</exception>
    public ChannelReader<Message> ToReader() => new PortChannelReader(TakeOwnership());
}
