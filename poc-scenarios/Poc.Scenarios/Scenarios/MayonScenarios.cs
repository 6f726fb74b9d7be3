// mayon-timer and mayon-sender, run by the .NET runner (so that any runtime can host them: see
// poc-scenarios/README.md "Any runtime as the host"). Their Rust-`main` originals are the Rust
// executables target/release/mayon-timer and mayon-sender (poc-scenarios/rust), where Rust code
// receives and sends itself; here the same channels and agents are driven through Poc.Bridge.
//
// mayon-timer — mayon asio-poc's examples/recv.rs done right: a C++ Asio timer task sends into a channel
// owned by the Rust runtime (a bounded tokio mpsc exported as ports).
//   Part 1 (mayon's run). The Rust runtime exports a channel of capacity 4; the C++ runtime's timer
//   task (CppRuntime.RunTimerAsync: every 10 ms an asio::steady_timer fires and the task sends
//   {count, "From Cpp async task!!"}, awaiting each send) holds its sender port. The host takes 3
//   messages from the receiver port (ReceiverPort.ToReader), prints them and "All messages
//   received", then cancels the timer task; the task ends CANCELLED and releases its port, which
//   closes the channel; the host drains what was sent meanwhile, until the channel reports closed.
//   Checks: ids 0, 1, 2 in order with the text; the timer ended CANCELLED; every message it counted
//   as sent arrived, in order (count and checksum equal its report).
//   Part 2 (backpressure: mayon used try_send and dropped a message whenever the channel was full).
//   A Rust channel of capacity C (--capacity, default 1); the timer task sends N messages
//   (--messages, default 50) and ends; the host reads slower than the timer (it awaits 20 ms after
//   each read — to *be* slow, not to synchronise) until the channel reports closed.
//   Checks: N messages, ids 0..N-1 in order, the text; the timer ended OK with count N and the
//   same checksum: the full channel paced it, nothing was dropped.
//
// mayon-sender — mayon asio-poc's Rust → C++ direction done right: a Rust producer agent (a tokio task)
// awaits each send into an Asio concurrent_channel exported by the C++ runtime (capacity 4); a C++
// consumer agent (a C++20 coroutine) drains it until the channel closes (when the producer ends and
// releases its port). N = --messages (default 10 000) messages of --payload bytes (default 64).
//   Checks: the producer ended OK with N messages; the consumer ended OK with N messages, 0 order
//   errors (per-stream sequence and payload pattern) and the producer's checksum.
using System.Diagnostics;
using System.Text;
using System.Threading.Channels;
using Poc.Bridge;

namespace Poc.Scenarios;

internal sealed class MayonTimerScenario : Scenario
{
    private const string Text = "From Cpp async task!!";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    public override string Name => "mayon-timer";
    public override string Runtimes => "C++ Rust C#";
    public override string Description =>
        "mayon's recv.rs: the C++ Asio timer task sends into a Rust tokio channel; take 3, cancel the timer; then capacity 1 and a slow reader: nothing dropped";

    public override async Task RunAsync(ScenarioContext context)
    {
        int n = (int)Math.Min(context.Options.Messages ?? 50, 1_000_000);
        int capacity = context.Options.Capacity ?? 1;
        await using var cpp = new CppRuntime(threads: 1);
        await using var rust = new RustRuntime(threads: 2);

        // Part 1: mayon's run.
        context.Line("    part 1: C++ timer (every 10 ms) -> Rust channel (capacity 4) -> take 3, cancel the timer");
        var (tx, rx) = rust.CreateChannel(capacity: 4);
        using var cancelTimer = new CancellationTokenSource();
        Task<AgentReport> timer = cpp.RunTimerAsync(tx, TimeSpan.FromMilliseconds(10), maxCount: 0, cancelTimer.Token);
        ChannelReader<Message> reader = rx.ToReader();
        ulong received = 0, checksum = 0;
        bool inOrder = true;
        for (int i = 0; i < 3; i++)
        {
            Message m = await reader.ReadAsync().AsTask().WaitAsync(Bound);
            string text = Encoding.UTF8.GetString(m.Payload.Span);
            context.Line($"    Received: count={m.Id} msg=\"{text}\"");
            inOrder &= m.Id == received && text == Text;
            received++;
            checksum = unchecked(checksum + m.Checksum());
        }
        context.Line("    All messages received");
        context.Check(inOrder, "part 1: ids 0, 1, 2 in order, each with the text \"From Cpp async task!!\"");
        cancelTimer.Cancel();
        AgentReport report = await timer.WaitAsync(Bound);
        // The timer released its port: the channel is closed; drain what it sent meanwhile.
        using var drainBound = new CancellationTokenSource(Bound);
        await foreach (Message m in reader.ReadAllAsync(drainBound.Token))
        {
            inOrder &= m.Id == received;
            received++;
            checksum = unchecked(checksum + m.Checksum());
        }
        context.Line($"    timer task: {report.Status}, sent {report.Messages}; the host received {received}");
        context.Check(report.Status == Status.Cancelled, $"part 1: the timer ended CANCELLED (got {report.Status})");
        context.Check(inOrder, "part 1: every message arrived in order");
        context.Check(report.Messages == received && report.Checksum == checksum,
            $"part 1: the timer's count and checksum equal what arrived ({report.Messages} vs {received})");

        // Part 2: backpressure with a slow reader.
        context.Line($"    part 2: the timer sends {n} messages into capacity {capacity}; the host reads every 20 ms (slower than the timer)");
        (tx, rx) = rust.CreateChannel(capacity);
        var clock = Stopwatch.StartNew();
        timer = cpp.RunTimerAsync(tx, TimeSpan.FromMilliseconds(10), maxCount: (ulong)n);
        reader = rx.ToReader();
        received = 0;
        checksum = 0;
        inOrder = true;
        using var readBound = new CancellationTokenSource(Bound + TimeSpan.FromMilliseconds(30.0 * n));
        await foreach (Message m in reader.ReadAllAsync(readBound.Token))
        {
            inOrder &= m.Id == received && Encoding.UTF8.GetString(m.Payload.Span) == Text;
            received++;
            checksum = unchecked(checksum + m.Checksum());
            await Task.Delay(20); // the slow consumer
        }
        report = await timer.WaitAsync(Bound);
        context.Line($"    received {received} of {n} in {clock.Elapsed.TotalSeconds:F2} s; timer task: {report.Status}, sent {report.Messages}");
        context.Check(received == (ulong)n, $"part 2: all {n} messages arrived (got {received}): none dropped");
        context.Check(inOrder, "part 2: ids 0..N-1 in order, each with the text");
        context.Check(report.Status == Status.Ok && report.Messages == (ulong)n && report.Checksum == checksum,
            $"part 2: the timer ended OK having sent exactly what arrived (status {report.Status}, count {report.Messages})");
        context.Work = $"{3 + n} msgs";
    }
}

internal sealed class MayonSenderScenario : Scenario
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    public override string Name => "mayon-sender";
    public override string Runtimes => "Rust C++";
    public override string Description =>
        "Rust -> C++: a Rust producer task awaits each send into an Asio concurrent_channel (capacity 4); a C++ coroutine consumer checks order and checksum";

    public override async Task RunAsync(ScenarioContext context)
    {
        ulong n = (ulong)(context.Options.Messages ?? 10_000);
        int payload = context.Options.Payload ?? 64;
        int capacity = context.Options.Capacity ?? 4;
        await using var cpp = new CppRuntime(threads: 1);
        await using var rust = new RustRuntime(threads: 1);

        var (tx, rx) = cpp.CreateChannel(capacity);
        var clock = Stopwatch.StartNew();
        Task<AgentReport> consumer = cpp.RunConsumerAsync(rx);
        Task<AgentReport> producer = rust.RunProducerAsync(tx, stream: 1, count: n, payload);
        AgentReport sent = await producer.WaitAsync(Bound);
        AgentReport got = await consumer.WaitAsync(Bound);
        double seconds = clock.Elapsed.TotalSeconds;
        context.Line($"    Rust producer: {sent.Status}, sent {sent.Messages} x {payload} B into a C++ channel of capacity {capacity}");
        context.Line($"    C++ consumer:  {got.Status}, received {got.Messages}, order errors {got.OrderErrors} ({n / Math.Max(seconds, 1e-9):N0} msgs/s)");
        context.Check(sent.Status == Status.Ok && sent.Messages == n, $"the producer sent all {n} messages (status {sent.Status})");
        context.Check(got.Status == Status.Ok && got.Messages == n, $"the consumer received all {n} messages (status {got.Status})");
        context.Check(got.OrderErrors == 0, $"no order or payload errors (got {got.OrderErrors})");
        context.Check(got.Checksum == sent.Checksum, "the consumer's checksum equals the producer's");
        context.Work = $"{n} msgs";
    }
}
