// cancel — sends and receives cancelled at random moments, by every runtime, on a channel of every
// runtime, many times over; afterwards every message is accounted for (docs/contract.md "Cancel",
// bridge.h rules 3 and 5: a cancel is a request, the op still completes exactly once, with
// CANCELLED if it had no effect or with its real outcome if it won the race; no message is lost).
//
// Protocol. One process: the .NET host, a CppRuntime, a RustRuntime and a DotNetRuntime. For every
// channel owner O in {C++, Rust, .NET} and every canceller K in {C#, C++, Rust, .NET}, R rounds
// (R = --messages / 64, default 32), each on a fresh channel created by O with capacity C
// (--capacity, default 1, 2 or 4 drawn at random) and 64 messages of P bytes (--payload, default
// 16), ids (stream << 48 | seq) and payload bytes (byte)(id + i) as the agents use them:
//   K = C#    a C# writer (SenderPort.ToWriter) makes 64 WriteAsync calls while a C# reader
//             (ReceiverPort.ToReader) calls ReadAsync. Every call gets its own token, cancelled at
//             a random moment: never (1 in 4), right after the call returned, or from a thread-pool
//             thread after a random spin. Each write attempt uses the next seq, so a write that
//             was cancelled leaves a gap and no duplicate. After its 64 calls the writer completes
//             (closes the channel); the reader then drains what is left ("left") with plain reads
//             until ChannelClosedException — a read whose cancel lost the race kept its message in
//             the reader's stash, and the drain gets it.
//   K = agent odd rounds: K's producer agent (RunProducerAsync, 64 messages) is cancelled through
//             its token once a C# reader has received a random k in 0..64 messages (+ a random
//             spin). The reader reads until ChannelClosedException (the agent releases its sender
//             when it ends, which closes the channel); what it reads after the agent's report
//             arrived is "left".
//             even rounds: K's consumer agent (RunConsumerAsync) is cancelled through its token
//             once a C# writer's k-th write (random k in 0..64) completed; the writer keeps
//             writing until ChannelClosedException (the agent releases its receiver when it ends)
//             or closes the channel after the 64th message.
// Invariants, checked per round:
//   * every C# await ends exactly once within 30 s, with a value, OperationCanceledException or
//     ChannelClosedException; an agent's task ends within 30 s with CANCELLED (the cancel won) or
//     OK (it had finished: the cancel lost);
//   * sent == received + left, and the checksums likewise: sent = writes that completed OK, or
//     the producer agent's report (exactly what it sent); received = reads that returned a
//     message, or the consumer agent's report;
//   * no id is received twice; ids arrive in send order (rule 6) with intact payloads; a producer
//     agent's messages are seq 0, 1, 2, … without a gap;
//   * a cancelled consumer agent received exactly a prefix of what was written (its report's
//     checksum is that prefix's, no order errors); the rest ("left") was dropped when the agent
//     released its receiver (rule 7): the queue, at most C, plus at most the one message that
//     the agent's last receive took from the port as its cancel raced — the import adapter keeps
//     such a message in its stash for the next receive (rule 5), which a cancelled agent never
//     makes, so it goes with the port. Hence 0 <= left <= C + 1. (The public API cannot drain a
//     port that an agent released, so "left" is sent - received there, bounded, not read back.)
// Cancel moments: for agents, k is drawn from 0..64, and 1 round in 4 from the last C + 1 (or is
// 64: cancel after the writer closed) so that the cancel races the agent's normal end and loses.
// The seed is printed; POC_SEED=<seed> replays the same random choices (thread timing still varies).
using System.Collections.Concurrent;
using System.Threading.Channels;
using Poc.Bridge;

namespace Poc.Scenarios;

internal sealed class CancelScenario : Scenario
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private const int MessagesPerRound = 64;
    private const int MaxSpin = 4000;

    public override string Name => "cancel";
    public override string Runtimes => "C# C++ Rust";
    public override string Description =>
        "sends and receives cancelled at random moments by C# tokens and by C++/Rust/.NET agents, on channels of each runtime; every message accounted for";

    private readonly ConcurrentQueue<string> _late = new(); // failures seen on the writer's thread
    private ScenarioContext _ctx = null!;
    private int _payload;
    private int? _capacity;

    public override async Task RunAsync(ScenarioContext context)
    {
        _ctx = context;
        _payload = context.Options.Payload ?? 16;
        _capacity = context.Options.Capacity;
        long messages = context.Options.Messages ?? 2048;
        int rounds = (int)Math.Clamp(messages / MessagesPerRound, 1, 100_000);
        int seed = Environment.GetEnvironmentVariable("POC_SEED") is { } s && int.TryParse(s, out int given)
            ? given
            : Random.Shared.Next();
        var rng = new Random(seed);

        await using var cpp = new CppRuntime(threads: 2);
        await using var rust = new RustRuntime(threads: 2);
        await using var dotnet = new DotNetRuntime();
        IBridgeRuntime[] owners = [cpp, rust, dotnet];
        IBridgeRuntime?[] cancellers = [null, cpp, rust, dotnet]; // null: C# code with tokens

        _ctx.Line($"    seed {seed} (POC_SEED={seed} replays the choices); {rounds} rounds per owner x canceller, " +
                  $"{MessagesPerRound} messages of {_payload} B per round, capacity {(_capacity?.ToString() ?? "1, 2 or 4")}");
        _ctx.Line("");
        _ctx.Line($"    {"OWNER",-5} {"CANCELLER",-9} {"CANCELLED OP",-15} {"OPS",6} {"PENDING",8} {"CANCELLED",10} {"DONE ANYWAY",12} |" +
                  $" {"SENT",6} {"RECEIVED",9} {"LEFT",5}");

        var total = new Row("all");
        foreach (IBridgeRuntime owner in owners)
        {
            foreach (IBridgeRuntime? canceller in cancellers)
            {
                Row first, second;
                if (canceller is null)
                {
                    (first, second) = (new Row("WriteAsync"), new Row("ReadAsync"));
                    for (int r = 0; r < rounds; r++)
                        await CSharpRoundAsync(owner, (ulong)r + 1, Capacity(rng), new Random(rng.Next()), first, second);
                }
                else
                {
                    (first, second) = (new Row("producer agent"), new Row("consumer agent"));
                    for (int r = 0; r < rounds; r++)
                    {
                        if (r % 2 == 0)
                            await ProducerAgentRoundAsync(owner, canceller, (ulong)r + 1, Capacity(rng), new Random(rng.Next()), first);
                        else
                            await ConsumerAgentRoundAsync(owner, canceller, (ulong)r + 1, Capacity(rng), new Random(rng.Next()), second);
                    }
                }
                string who = canceller?.Name ?? "C#";
                PrintRow(owner.Name, who, first, accountingToo: true);
                PrintRow("", "", second, accountingToo: canceller is not null);
                foreach (Row row in new[] { first, second })
                {
                    total.Ops += row.Ops;
                    total.Cancelled += row.Cancelled;
                    total.DoneAnyway += row.DoneAnyway;
                }
                foreach (Row row in canceller is null ? new[] { first } : new[] { first, second })
                {
                    total.Sent += row.Sent;
                    total.Received += row.Received;
                    total.Left += row.Left;
                }
            }
        }
        _ctx.Line($"    {"all",-5} {"",-9} {"",-15} {total.Ops,6} {"",8} {total.Cancelled,10} {total.DoneAnyway,12} |" +
                  $" {total.Sent,6} {total.Received,9} {total.Left,5}");
        _ctx.Line("");
        _ctx.Line("    PENDING: the C# call returned an uncompleted ValueTask (the port op was queued); agents' ops are not visible.");
        _ctx.Line("    CANCELLED: ended with OperationCanceledException / agent status CANCELLED; DONE ANYWAY: a cancel was");
        _ctx.Line("    requested but the op (agent) completed with its real outcome. LEFT: drained after the sender was done;");
        _ctx.Line("    for cancelled consumer agents, what their receiver's release dropped (at most capacity + 1).");
        _ctx.Work = $"{total.Ops} ops";
    }

    private int Capacity(Random rng) => _capacity ?? (1 << rng.Next(3));

    /// <summary>Counts for one table row (one kind of cancelled op of one owner x canceller).</summary>
    private sealed class Row(string kind)
    {
        public string Kind { get; } = kind;
        public long Ops, Pending, Cancelled, DoneAnyway, Sent, Received, Left;
        public bool AgentRow => Kind.EndsWith("agent", StringComparison.Ordinal);
    }

    private void PrintRow(string owner, string canceller, Row row, bool accountingToo)
    {
        string pending = row.AgentRow ? "-" : row.Pending.ToString();
        string accounting = accountingToo ? $" {row.Sent,6} {row.Received,9} {row.Left,5}" : $" {"(same channels)",22}";
        _ctx.Line($"    {owner,-5} {canceller,-9} {row.Kind,-15} {row.Ops,6} {pending,8} {row.Cancelled,10} {row.DoneAnyway,12} |{accounting}");
    }

    // ---------------------------------------------------------------------------------------------
    // K = C#: WriteAsync and ReadAsync, each with its own token cancelled at a random moment.

    private async Task CSharpRoundAsync(IBridgeRuntime owner, ulong stream, int capacity, Random rng, Row writes, Row reads)
    {
        string where = $"{owner.Name} channel (capacity {capacity}), C# round {stream}";
        var (tx, rx) = owner.CreateChannel(capacity);
        ChannelWriter<Message> writer = tx.ToWriter();
        ChannelReader<Message> reader = rx.ToReader();
        var writerRng = new Random(rng.Next());
        var readerRng = new Random(rng.Next());

        var sent = new Tally();
        Task writing = Task.Run(async () =>
        {
            for (ulong seq = 0; seq < MessagesPerRound; seq++)
            {
                Message m = MakeMessage(stream, seq, _payload);
                Outcome<bool> o = await CallWithRandomCancelAsync(
                    ct => Done(writer.WriteAsync(m, ct)), writerRng, writes);
                if (o.Kind == OutcomeKind.Value) sent.Add(m);
                else if (o.Kind != OutcomeKind.Cancelled)
                {
                    _late.Enqueue($"{where}: WriteAsync of seq {seq} ended with {o.Describe()}");
                    break;
                }
            }
            writer.TryComplete(); // closes the channel: the reader drains, then sees CLOSED
        });

        var received = new Tally();
        var left = new Tally();
        var seen = new HashSet<ulong>();
        ulong lastId = 0;
        bool any = false, ordered = true, intact = true, duplicates = false, readerOk = true;
        void Take(Message m, Tally into)
        {
            if (!seen.Add(m.Id)) duplicates = true;
            if (any && m.Id <= lastId) ordered = false;
            if (!MessageChecksum.CheckPattern(m.Id, m.Payload.Span) || m.Payload.Length != _payload) intact = false;
            (lastId, any) = (m.Id, true);
            into.Add(m);
        }

        // Phase 1, while the writer writes: every read gets a token cancelled at a random moment.
        while (!writing.IsCompleted)
        {
            Outcome<Message> o = await CallWithRandomCancelAsync(ct => reader.ReadAsync(ct), readerRng, reads);
            if (o.Kind == OutcomeKind.Value) Take(o.Value, received);
            else if (o.Kind == OutcomeKind.Closed) break;
            else if (o.Kind != OutcomeKind.Cancelled)
            {
                _ctx.Fail($"{where}: ReadAsync ended with {o.Describe()}");
                readerOk = false;
                break;
            }
        }
        if (!await Completes(writing))
        {
            _ctx.Fail($"{where}: the C# writer did not finish within {Bound.TotalSeconds} s");
            return;
        }
        // Phase 2: the writer closed the channel; plain reads drain the stash and the queue.
        while (readerOk)
        {
            Outcome<Message> o = await Settle(reader.ReadAsync());
            if (o.Kind == OutcomeKind.Value) Take(o.Value, left);
            else if (o.Kind == OutcomeKind.Closed) break;
            else
            {
                _ctx.Fail($"{where}: a draining ReadAsync ended with {o.Describe()}");
                break;
            }
        }
        ((IDisposable)reader).Dispose();
        ReportLateFailures();

        writes.Sent += sent.Count;
        writes.Received += received.Count;
        writes.Left += left.Count;
        _ctx.Check(sent.Count == received.Count + left.Count && sent.Sum == unchecked(received.Sum + left.Sum),
            $"{where}: sent {sent.Count} (checksum {sent.Sum:x16}) == received {received.Count} + left {left.Count} " +
            $"(checksum {unchecked(received.Sum + left.Sum):x16})");
        _ctx.Check(!duplicates, $"{where}: no id received twice");
        _ctx.Check(ordered, $"{where}: ids arrive in the order they were written");
        _ctx.Check(intact, $"{where}: payloads arrive intact");
    }

    /// <summary>Starts one call with a fresh token and cancels the token at a random moment: never
    /// (1 in 4), right after the call returned, or from a pool thread after a random spin.</summary>
    private async Task<Outcome<T>> CallWithRandomCancelAsync<T>(Func<CancellationToken, ValueTask<T>> call, Random rng, Row row)
    {
        int mode = rng.Next(4);
        int spin = rng.Next(MaxSpin);
        var cts = new CancellationTokenSource();
        ValueTask<T> op = call(mode == 0 ? CancellationToken.None : cts.Token);
        bool pending = !op.IsCompleted;
        Task cancelling = Task.CompletedTask;
        if (mode == 1) cts.Cancel();
        else if (mode >= 2) cancelling = Task.Run(() => { Thread.SpinWait(spin); cts.Cancel(); });

        Outcome<T> outcome = await Settle(op);
        await cancelling; // the spin is bounded; the CTS is disposed only after Cancel ran
        cts.Dispose();

        row.Ops++;
        if (pending) row.Pending++;
        if (outcome.Kind == OutcomeKind.Cancelled)
        {
            row.Cancelled++;
            if (mode == 0) _late.Enqueue($"{row.Kind}: ended with OperationCanceledException though its token was never cancelled");
        }
        else if (mode != 0 && outcome.Kind == OutcomeKind.Value && pending)
        {
            row.DoneAnyway++;
        }
        return outcome;
    }

    // ---------------------------------------------------------------------------------------------
    // K = agent: a producer or consumer agent of K, cancelled through its token at a random moment.

    private async Task ProducerAgentRoundAsync(IBridgeRuntime owner, IBridgeRuntime agentRuntime, ulong stream, int capacity,
        Random rng, Row row)
    {
        string where = $"{owner.Name} channel (capacity {capacity}), {agentRuntime.Name} producer agent round {stream}";
        int cancelAt = CancelPoint(rng, capacity);
        int spin = rng.Next(MaxSpin);
        var (tx, rx) = owner.CreateChannel(capacity);
        ChannelReader<Message> reader = rx.ToReader();
        using var cts = new CancellationTokenSource();
        Task<AgentReport> producing = agentRuntime.RunProducerAsync(tx, stream, MessagesPerRound, _payload, cts.Token);
        if (cancelAt == 0) CancelAfterSpin(cts, spin);

        var received = new Tally();
        var left = new Tally();
        bool inSequence = true, intact = true;
        ulong nextSeq = 0;
        while (true)
        {
            bool agentEnded = producing.IsCompleted; // what arrives after this was in the channel
            Outcome<Message> o = await Settle(reader.ReadAsync());
            if (o.Kind == OutcomeKind.Closed) break;
            if (o.Kind != OutcomeKind.Value)
            {
                _ctx.Fail($"{where}: the C# reader's ReadAsync ended with {o.Describe()}");
                break;
            }
            Message m = o.Value;
            if (m.Id != MessageChecksum.MakeId(stream, nextSeq)) inSequence = false;
            if (!MessageChecksum.CheckPattern(m.Id, m.Payload.Span) || m.Payload.Length != _payload) intact = false;
            nextSeq++;
            (agentEnded ? left : received).Add(m);
            if (received.Count + left.Count == cancelAt) CancelAfterSpin(cts, spin);
        }
        ((IDisposable)reader).Dispose();
        Outcome<AgentReport> ended = await Settle(new ValueTask<AgentReport>(producing));
        if (!_ctx.Check(ended.Kind == OutcomeKind.Value, $"{where}: the agent's task ends with its report (got {ended.Describe()})"))
            return;
        AgentReport report = ended.Value;

        row.Ops++;
        if (report.Status == Status.Cancelled) row.Cancelled++;
        else if (report.Status == Status.Ok && cts.IsCancellationRequested) row.DoneAnyway++;
        row.Sent += (long)report.Messages;
        row.Received += received.Count;
        row.Left += left.Count;

        _ctx.Check(report.Status is Status.Cancelled or Status.Ok,
            $"{where}: the agent ends with CANCELLED or OK (got {report.Status})");
        _ctx.Check(report.Status != Status.Ok || report.Messages == MessagesPerRound,
            $"{where}: an agent that ended OK sent all {MessagesPerRound} (reported {report.Messages})");
        _ctx.Check(report.Status != Status.Cancelled || cts.IsCancellationRequested,
            $"{where}: CANCELLED only after its token fired");
        _ctx.Check((long)report.Messages == received.Count + left.Count && report.Checksum == unchecked(received.Sum + left.Sum),
            $"{where}: sent {report.Messages} (checksum {report.Checksum:x16}) == received {received.Count} + left {left.Count} " +
            $"(checksum {unchecked(received.Sum + left.Sum):x16})");
        _ctx.Check(inSequence, $"{where}: seq 0, 1, 2, … arrive without gap or duplicate");
        _ctx.Check(intact, $"{where}: payloads arrive intact");
    }

    private async Task ConsumerAgentRoundAsync(IBridgeRuntime owner, IBridgeRuntime agentRuntime, ulong stream, int capacity,
        Random rng, Row row)
    {
        string where = $"{owner.Name} channel (capacity {capacity}), {agentRuntime.Name} consumer agent round {stream}";
        int cancelAt = rng.Next(4) == 0 ? MessagesPerRound : rng.Next(MessagesPerRound);
        int spin = rng.Next(MaxSpin);
        var (tx, rx) = owner.CreateChannel(capacity);
        ChannelWriter<Message> writer = tx.ToWriter();
        using var cts = new CancellationTokenSource();
        Task<AgentReport> consuming = agentRuntime.RunConsumerAsync(rx, cts.Token);
        if (cancelAt == 0) CancelAfterSpin(cts, spin);

        var sent = new List<Message>(MessagesPerRound);
        bool closedUnderUs = false;
        for (ulong seq = 0; seq < MessagesPerRound; seq++)
        {
            Message m = MakeMessage(stream, seq, _payload);
            Outcome<bool> o = await Settle(Done(writer.WriteAsync(m)));
            if (o.Kind == OutcomeKind.Closed)
            {
                closedUnderUs = true; // the agent ended and released its receiver
                break;
            }
            if (o.Kind != OutcomeKind.Value)
            {
                _ctx.Fail($"{where}: the C# writer's WriteAsync ended with {o.Describe()}");
                break;
            }
            sent.Add(m);
            if (sent.Count == cancelAt && cancelAt < MessagesPerRound) CancelAfterSpin(cts, spin);
        }
        writer.TryComplete(); // closes the channel after the last message (a no-op if the agent closed it)
        if (cancelAt == MessagesPerRound) CancelAfterSpin(cts, spin); // races with the agent's drain to CLOSED

        Outcome<AgentReport> ended = await Settle(new ValueTask<AgentReport>(consuming));
        if (!_ctx.Check(ended.Kind == OutcomeKind.Value, $"{where}: the agent's task ends with its report (got {ended.Describe()})"))
            return;
        AgentReport report = ended.Value;
        long got = (long)report.Messages;
        long dropped = sent.Count - got;
        ulong prefixSum = 0;
        for (int i = 0; i < Math.Min(got, sent.Count); i++) prefixSum = unchecked(prefixSum + sent[i].Checksum());

        row.Ops++;
        if (report.Status == Status.Cancelled) row.Cancelled++;
        else if (report.Status == Status.Ok && cts.IsCancellationRequested) row.DoneAnyway++;
        row.Sent += sent.Count;
        row.Received += got;
        row.Left += Math.Max(0, dropped);

        _ctx.Check(report.Status is Status.Cancelled or Status.Ok,
            $"{where}: the agent ends with CANCELLED or OK (got {report.Status})");
        _ctx.Check(report.Status != Status.Cancelled || cts.IsCancellationRequested,
            $"{where}: CANCELLED only after its token fired");
        _ctx.Check(report.OrderErrors == 0, $"{where}: the agent saw no order or payload error (reported {report.OrderErrors})");
        _ctx.Check(got <= sent.Count && report.Checksum == prefixSum,
            $"{where}: the agent received exactly the first {got} of the {sent.Count} messages written " +
            $"(checksum {report.Checksum:x16}, prefix {prefixSum:x16})");
        if (report.Status == Status.Ok)
            _ctx.Check(!closedUnderUs && dropped == 0 && sent.Count == MessagesPerRound,
                $"{where}: an agent that ended OK received all {MessagesPerRound} (got {got} of {sent.Count})");
        else
            _ctx.Check(dropped >= 0 && dropped <= capacity + 1,
                $"{where}: sent {sent.Count} == received {got} + left {dropped}, left at most capacity + 1 = {capacity + 1} " +
                "(the queue and the stash of the agent's last receive, dropped when it released its receiver)");
    }

    /// <summary>Reports, on the scenario's own flow, what the C# writer's task found.</summary>
    private void ReportLateFailures()
    {
        while (_late.TryDequeue(out string? why)) _ctx.Fail(why);
    }

    /// <summary>After how many messages a producer agent is cancelled: 0..64, and 1 in 4 times one
    /// of the last C + 1, when the agent may already have sent everything (the cancel may lose).</summary>
    private static int CancelPoint(Random rng, int capacity) =>
        rng.Next(4) == 0
            ? rng.Next(Math.Max(0, MessagesPerRound - capacity - 1), MessagesPerRound + 1)
            : rng.Next(MessagesPerRound + 1);

    private static void CancelAfterSpin(CancellationTokenSource cts, int spin)
    {
        Thread.SpinWait(spin);
        cts.Cancel(); // the agent's token: a request (agent_cancel), its report still comes
    }

    // ---------------------------------------------------------------------------------------------
    // Helpers.

    private static Message MakeMessage(ulong stream, ulong seq, int payloadLength)
    {
        ulong id = MessageChecksum.MakeId(stream, seq);
        byte[] payload = new byte[payloadLength];
        MessageChecksum.FillPattern(id, payload);
        return new Message(id, payload);
    }

    private sealed class Tally
    {
        public long Count;
        public ulong Sum;

        public void Add(Message m)
        {
            Count++;
            Sum = unchecked(Sum + m.Checksum());
        }
    }

    private enum OutcomeKind { Value, Cancelled, Closed, Failed, Hung }

    /// <summary>How one await ended.</summary>
    private readonly record struct Outcome<T>(OutcomeKind Kind, T Value, Exception? Error)
    {
        public string Describe() => Kind switch
        {
            OutcomeKind.Value => "a value",
            OutcomeKind.Cancelled => "OperationCanceledException",
            OutcomeKind.Closed => "ChannelClosedException",
            OutcomeKind.Hung => $"no completion within {Bound.TotalSeconds} s",
            _ => $"{Error!.GetType().Name}: {Error.Message}",
        };
    }

    private static async ValueTask<bool> Done(ValueTask write)
    {
        await write;
        return true;
    }

    /// <summary>Awaits <paramref name="op"/> once, bounded, and says how it ended.</summary>
    private static async Task<Outcome<T>> Settle<T>(ValueTask<T> op)
    {
        try
        {
            T value = op.IsCompleted ? op.Result : await op.AsTask().WaitAsync(Bound);
            return new Outcome<T>(OutcomeKind.Value, value, null);
        }
        catch (TimeoutException e)
        {
            return new Outcome<T>(OutcomeKind.Hung, default!, e);
        }
        catch (OperationCanceledException e)
        {
            return new Outcome<T>(OutcomeKind.Cancelled, default!, e);
        }
        catch (ChannelClosedException e)
        {
            return new Outcome<T>(OutcomeKind.Closed, default!, e);
        }
        catch (Exception e)
        {
            return new Outcome<T>(OutcomeKind.Failed, default!, e);
        }
    }

    private static async Task<bool> Completes(Task t)
    {
        try
        {
            await t.WaitAsync(Bound);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }
}
