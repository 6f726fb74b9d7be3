using System.Runtime.CompilerServices;
using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using Poc.Bridge;

namespace Poc.Bench.Micro;

/// <summary>
/// The .NET import path, one message per operation: <see cref="ChannelWriter{T}.WriteAsync"/> and
/// <see cref="ChannelReader{T}.ReadAsync"/> on the writer/reader that
/// <see cref="SenderPort.ToWriter"/> / <see cref="ReceiverPort.ToReader"/> make of a channel owned
/// by C++, Rust or .NET (capacity 1, one runtime thread).
/// <list type="bullet">
/// <item><c>Fast</c>: write, then read, on a channel with room: both complete in the port call.</item>
/// <item><c>Pending</c>: a read issued on the empty channel (it goes PENDING), then a write that
/// completes it: the exporter's completion callback completes the read, whose continuation runs on
/// the thread pool.</item>
/// </list>
/// Each invocation runs <see cref="Ops"/> messages in a loop awaited by a pooled async method
/// (<see cref="PoolingAsyncValueTaskMethodBuilder"/>), so the benchmark's own async machinery
/// allocates nothing per message once warm; the message written is made once (its payload array
/// reused): what MemoryDiagnoser reports per operation is the import path's (plus, for a .NET-owned
/// channel, the .NET exporter's, which runs in the same process). The received payload is copied
/// into a new byte[] per message by design (PortOperation.cs): payload 0 is the adapter's figure.
/// </summary>
public class ImportBenchmarks
{
    public const int Ops = 256;

    [Params("C++", "Rust", ".NET")]
    public string Owner { get; set; } = "C++";

    [Params(0, 64)]
    public int Payload { get; set; }

    private IBridgeRuntime? _runtime;
    private ChannelWriter<Message> _writer = null!;
    private ChannelReader<Message> _reader = null!;
    private Message _msg;

    [GlobalSetup]
    public void Setup()
    {
        _runtime = Owner switch
        {
            "C++" => new CppRuntime(),
            "Rust" => new RustRuntime(),
            ".NET" => new DotNetRuntime(),
            _ => throw new ArgumentException($"unknown owner {Owner}"),
        };
        var (sender, receiver) = _runtime.CreateChannel(1);
        _writer = sender.ToWriter();
        _reader = receiver.ToReader();
        var payload = new byte[Payload];
        MessageChecksum.FillPattern(1, payload);
        _msg = new Message(1, payload);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        ((IDisposable)_writer).Dispose();
        ((IDisposable)_reader).Dispose();
        _runtime?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _runtime = null;
    }

    [Benchmark(OperationsPerInvoke = Ops)]
    public ValueTask Fast() => FastLoop();

    [Benchmark(OperationsPerInvoke = Ops)]
    public ValueTask Pending() => PendingLoop();

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FastLoop()
    {
        for (int i = 0; i < Ops; i++)
        {
            await _writer.WriteAsync(_msg);
            Check(await _reader.ReadAsync());
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask PendingLoop()
    {
        for (int i = 0; i < Ops; i++)
        {
            ValueTask<Message> read = _reader.ReadAsync();
            await _writer.WriteAsync(_msg);
            Check(await read);
        }
    }

    private void Check(Message m)
    {
        if (m.Id != _msg.Id || m.Payload.Length != Payload)
            throw new InvalidOperationException($"received id {m.Id} with {m.Payload.Length} bytes, expected {_msg.Id} with {Payload}");
    }
}
