using System.Threading.Channels;
using Poc.Bridge.Import;

namespace Poc.Bridge;

public sealed partial class SenderPort
{
    /// <summary>
    /// Imports this port as a <see cref="ChannelWriter{T}"/>: <c>WriteAsync</c> waits for room
    /// (backpressure), <c>TryWrite</c> never waits, cancellation reaches the port.
    /// Takes ownership of the port: <c>Complete()</c> on the writer closes the channel for new
    /// sends and releases the port. The returned writer also implements <see cref="IDisposable"/>:
    /// disposing releases the port without closing the channel for other senders.
    /// </summary>
    /// <exception cref="ObjectDisposedException">This port was released or handed over already.</exception>
    public ChannelWriter<Message> ToWriter() => new PortChannelWriter(TakeOwnership());
}
