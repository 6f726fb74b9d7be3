// shutdown — each runtime is shut down while the other runtimes have operations pending on its
// ports (docs/contract.md "Shutdown", bridge.h rule 8: every pending op on the ports of a runtime
// that shuts down completes with SHUTDOWN, exactly once; later calls answer SHUTDOWN; release stays
// valid; the other runtimes are not affected).
//
// Protocol. For each owner O in {C++, Rust, .NET}, with a fresh CppRuntime, RustRuntime and
// DotNetRuntime (O is one of them, A and B are the other two) and k = --messages (default 2):
//   1. park pending receives: k channels of O (capacity 1, empty) each with a consumer agent of A
//      (RunConsumerAsync), k with one of B, and k read by C# (ToReader().ReadAsync(), checked to
//      be pending);
//   2. park pending sends: one channel of O with capacity 1, filled by one C# write; then k
//      producer agents of A and k of B on clones of its sender (RunProducerAsync: their first
//      send waits for room), and k C# writers on clones (WriteAsync, checked to be pending);
//   3. a 1-message producer -> consumer on each of A and B (both work before the shutdown; the
//      agents started in 1.-2. have been given the runtimes' threads — the public API does not show
//      when an agent's first op is queued, and the contract answers SHUTDOWN also to an op issued
//      after the shutdown, so the outcome checked below is the same either way);
//   4. O.ShutdownAsync(), bounded by 30 s;
//   5. every parked op ends, within 30 s: agents report SHUTDOWN with 0 messages; C# awaits throw
//      InteropException with Status.Shutdown (the documented exception: Poc.Bridge's StatusErrors
//      and the import adapters map SHUTDOWN to it);
//   6. afterwards, on O's ports and O itself: ReadAsync and WriteAsync throw InteropException
//      SHUTDOWN, TryRead and TryWrite answer false, WaitToWriteAsync throws SHUTDOWN, Clone of a
//      sender throws SHUTDOWN, a new consumer agent of A on the receiver that still holds the
//      filling message and a new producer agent of B on a sender of O both end with SHUTDOWN and
//      0 messages, O.CreateChannel throws SHUTDOWN, a second O.ShutdownAsync completes;
//   7. A and B keep working: 100 * k messages from a producer agent of A through a channel of B
//      to a consumer agent of B, and the same the other way round (counts and checksums equal, no
//      order error).
// Invariants: everything listed in 5.-7.; no await hangs (each bounded by 30 s), no crash.
using System.Diagnostics;
using System.Threading.Channels;
using Poc.Bridge;

namespace Poc.Scenarios;

internal sealed class ShutdownScenario : Scenario
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private const int Payload = 16;

    public override string Name => "shutdown";
    public override string Runtimes => "C# C++ Rust";
    public override string Description =>
        "each runtime shut down while agents of the others and C# readers/writers wait on its ports: all end with SHUTDOWN, the others keep working";

    private ScenarioContext _ctx = null!;
    private long _ops;

    public override async Task RunAsync(ScenarioContext context)
    {
        _ctx = context;
        int k = (int)Math.Clamp(context.Options.Messages ?? 2, 1, 256);
        _ctx.Line($"    k = {k} parked ops per kind and party; {100 * k} messages per direction afterwards");
        foreach (string ownerName in new[] { "C++", "Rust", ".NET" })
        {
            await using var cpp = new CppRuntime(threads: 2);
            await using var rust = new RustRuntime(threads: 2);
            await using var dotnet = new DotNetRuntime();
            IBridgeRuntime[] all = [cpp, rust, dotnet];
            IBridgeRuntime owner = all.Single(r => r.Name == ownerName);
            IBridgeRuntime[] others = all.Where(r => r != owner).ToArray();
            await RunOwnerAsync(owner, others[0], others[1], k);
        }
        _ctx.Work = $"{_ops} ops";
    }

    /// <summary>One op parked on the owner's ports: what it is, and how it ended.</summary>
    private sealed record Parked(string Kind, string By, Task<string> Ending);

    private async Task RunOwnerAsync(IBridgeRuntime owner, IBridgeRuntime a, IBridgeRuntime b, int k)
    {
        _ctx.Line("");
        _ctx.Line($"    owner {owner.Name}; the others: {a.Name}, {b.Name}");
        var parked = new List<Parked>();
        var spareSenders = new List<SenderPort>();          // senders of the empty channels (kept open, used in 6.)
        var readers = new List<ChannelReader<Message>>();
        var writers = new List<ChannelWriter<Message>>();
        ulong stream = 1;

        // 1. Pending receives on empty channels of the owner.
        foreach (IBridgeRuntime agentRuntime in new[] { a, b })
        {
            for (int i = 0; i < k; i++)
            {
                var (tx, rx) = owner.CreateChannel(capacity: 1);
                spareSenders.Add(tx);
                parked.Add(new Parked("receive", $"{agentRuntime.Name} consumer agent", AgentEnding(agentRuntime.RunConsumerAsync(rx))));
            }
        }
        for (int i = 0; i < k; i++)
        {
            var (tx, rx) = owner.CreateChannel(capacity: 1);
            spareSenders.Add(tx);
            ChannelReader<Message> reader = rx.ToReader();
            readers.Add(reader);
            ValueTask<Message> read = reader.ReadAsync();
            _ctx.Check(!read.IsCompleted, $"{owner.Name}: a C# ReadAsync on an empty channel is pending");
            parked.Add(new Parked("receive", "C# ReadAsync", CSharpEnding(read.AsTask())));
        }

        // 2. Pending sends on one full channel of the owner (capacity 1, filled by C#).
        var (fullTx, fullRx) = owner.CreateChannel(capacity: 1);
        ChannelWriter<Message> filler = fullTx.Clone().ToWriter();
        writers.Add(filler);
        bool filled = await Completes(filler.WriteAsync(Pattern(stream++, 0)).AsTask());
        _ctx.Check(filled, $"{owner.Name}: the C# write that fills the capacity-1 channel completes");
        foreach (IBridgeRuntime agentRuntime in new[] { a, b })
        {
            for (int i = 0; i < k; i++)
                parked.Add(new Parked("send", $"{agentRuntime.Name} producer agent",
                    AgentEnding(agentRuntime.RunProducerAsync(fullTx.Clone(), stream++, 10, Payload))));
        }
        for (int i = 0; i < k; i++)
        {
            ChannelWriter<Message> writer = fullTx.Clone().ToWriter();
            writers.Add(writer);
            ValueTask write = writer.WriteAsync(Pattern(stream++, 0));
            _ctx.Check(!write.IsCompleted, $"{owner.Name}: a C# WriteAsync on a full channel is pending");
            parked.Add(new Parked("send", "C# WriteAsync", CSharpEnding(WriteAsValue(write))));
        }

        // 3. Both other runtimes work before the shutdown (and their agents have been scheduled).
        foreach (IBridgeRuntime r in new[] { a, b })
            await ExpectTrafficAsync(r, r, 1, $"before: 1 message {r.Name} -> {r.Name} channel -> {r.Name}");
        _ctx.Check(parked.All(p => !p.Ending.IsCompleted), $"{owner.Name}: every parked op is still pending before the shutdown");

        // 4. Shut the owner down.
        var clock = Stopwatch.StartNew();
        bool down = await Completes(owner.ShutdownAsync().AsTask());
        clock.Stop();
        _ctx.Check(down, $"{owner.Name}: ShutdownAsync completes within {Bound.TotalSeconds} s");
        _ctx.Line($"    {owner.Name}.ShutdownAsync() with {parked.Count} ops pending on its ports: " +
                  (down ? $"{clock.Elapsed.TotalMilliseconds:F1} ms" : "did NOT complete"));

        // 5. Every parked op ended with SHUTDOWN.
        _ctx.Line($"      {"PENDING",-8} {"BY",-27} {"ENDED WITH",-40} RESULT");
        foreach (var group in parked.GroupBy(p => (p.Kind, p.By)))
        {
            var endings = new List<string>();
            foreach (Parked p in group) endings.Add(await WithinBound(p.Ending));
            _ops += endings.Count;
            bool ok = endings.All(IsShutdown);
            string summary = string.Join(", ", endings.GroupBy(e => e).Select(e => $"{e.Count()} x {e.Key}"));
            _ctx.Line($"      {group.Key.Kind,-8} {group.Key.By,-27} {summary,-40} {(ok ? "ok" : "FAIL")}");
            _ctx.Check(ok, $"{owner.Name} shut down: every pending {group.Key.Kind} of {group.Key.By} ends with SHUTDOWN (got {summary})");
        }

        // 6. Later calls on the owner's ports, and on the owner, answer SHUTDOWN.
        _ctx.Line($"      {"AFTER",-36} {"ENDED WITH",-40} RESULT");
        ChannelReader<Message> deadReader = readers[0];
        ChannelWriter<Message> deadWriter = writers[^1];
        await AfterAsync("C# ReadAsync (a parked reader)", CSharpEnding(deadReader.ReadAsync().AsTask()), IsShutdown, "InteropException SHUTDOWN");
        await AfterAsync("C# TryRead", Task.FromResult(Try(() => deadReader.TryRead(out _))), e => e == "false", "false");
        await AfterAsync("C# WriteAsync (a parked writer)", CSharpEnding(WriteAsValue(deadWriter.WriteAsync(Pattern(stream++, 0)))), IsShutdown,
            "InteropException SHUTDOWN");
        await AfterAsync("C# TryWrite", Task.FromResult(Try(() => deadWriter.TryWrite(Pattern(stream++, 0)))), e => e == "false", "false");
        await AfterAsync("C# WaitToWriteAsync", CSharpEnding(deadWriter.WaitToWriteAsync().AsTask()), IsShutdown,
            "InteropException SHUTDOWN");
        await AfterAsync("SenderPort.Clone()", Task.FromResult(Try(() => { fullTx.Clone().Dispose(); return true; })), IsShutdown,
            "InteropException SHUTDOWN");
        await AfterAsync($"new {a.Name} consumer agent (full ch.)", AgentEnding(a.RunConsumerAsync(fullRx)), IsShutdown,
            "SHUTDOWN, 0 messages (the queued one is not delivered)");
        await AfterAsync($"new {b.Name} producer agent", AgentEnding(b.RunProducerAsync(spareSenders[0], stream++, 10, Payload)),
            IsShutdown, "SHUTDOWN, 0 messages");
        await AfterAsync($"{owner.Name}.CreateChannel", Task.FromResult(Try(() =>
        {
            var (tx, rx) = owner.CreateChannel(1);
            tx.Dispose();
            rx.Dispose();
            return true;
        })), IsShutdown, "InteropException SHUTDOWN");
        await AfterAsync($"{owner.Name}.ShutdownAsync() again", CSharpEnding(owner.ShutdownAsync().AsTask().ContinueWith(
            t => { t.GetAwaiter().GetResult(); return true; }, TaskScheduler.Default)), e => e == "completed", "completed");

        // Release what is left: release stays valid after the shutdown.
        foreach (SenderPort s in spareSenders) s.Dispose();
        fullTx.Dispose();
        fullRx.Dispose();
        foreach (ChannelReader<Message> r in readers) ((IDisposable)r).Dispose();
        foreach (ChannelWriter<Message> w in writers) ((IDisposable)w).Dispose();

        // 7. The other runtimes keep working.
        await ExpectTrafficAsync(a, b, 100 * k, $"after: {100 * k} messages {a.Name} -> {b.Name} channel -> {b.Name}");
        await ExpectTrafficAsync(b, a, 100 * k, $"after: {100 * k} messages {b.Name} -> {a.Name} channel -> {a.Name}");
    }

    private async Task AfterAsync(string what, Task<string> ending, Func<string, bool> expected, string expectedText)
    {
        string got = await WithinBound(ending);
        bool ok = expected(got);
        _ops++;
        _ctx.Line($"      {what,-36} {got,-40} {(ok ? "ok" : "FAIL")}");
        _ctx.Check(ok, $"after the shutdown: {what}: expected {expectedText}, got {got}");
    }

    /// <summary>A producer agent of <paramref name="producer"/> sends <paramref name="count"/> messages
    /// through a channel of <paramref name="channelAndConsumer"/> to a consumer agent of it.</summary>
    private async Task ExpectTrafficAsync(IBridgeRuntime producer, IBridgeRuntime channelAndConsumer, int count, string what)
    {
        var (tx, rx) = channelAndConsumer.CreateChannel(capacity: 8);
        Task<AgentReport> consuming = channelAndConsumer.RunConsumerAsync(rx);
        Task<AgentReport> producing = producer.RunProducerAsync(tx, 7, (ulong)count, Payload);
        string outcome;
        bool ok;
        try
        {
            AgentReport sent = await producing.WaitAsync(Bound);
            AgentReport got = await consuming.WaitAsync(Bound);
            ok = sent.Status == Status.Ok && got.Status == Status.Ok && sent.Messages == (ulong)count &&
                 got.Messages == sent.Messages && got.Checksum == sent.Checksum && got.OrderErrors == 0;
            outcome = $"sent {sent.Messages} ({sent.Status}), received {got.Messages} ({got.Status}), " +
                      $"checksums {(got.Checksum == sent.Checksum ? "equal" : "DIFFER")}, {got.OrderErrors} order errors";
        }
        catch (TimeoutException)
        {
            (outcome, ok) = ($"no report within {Bound.TotalSeconds} s", false);
        }
        _ops += 2L * count;
        _ctx.Line($"      {what,-64} {(ok ? "ok" : "FAIL")}: {outcome}");
        _ctx.Check(ok, $"{what}: {outcome}");
    }

    /// <summary>An agent's report SHUTDOWN with nothing moved, or a C# call's InteropException SHUTDOWN.</summary>
    private static bool IsShutdown(string ending) => ending is "SHUTDOWN, 0 messages" or "InteropException SHUTDOWN";

    /// <summary>How an agent's task ended: its status and count (the count must be 0 for SHUTDOWN).</summary>
    private static async Task<string> AgentEnding(Task<AgentReport> agent)
    {
        try
        {
            AgentReport r = await agent;
            string status = r.Status.ToString().ToUpperInvariant();
            return r.Messages == 0 ? $"{status}, 0 messages" : $"{status} after {r.Messages} messages";
        }
        catch (Exception e)
        {
            return Describe(e);
        }
    }

    private static async Task<string> CSharpEnding<T>(Task<T> op)
    {
        try
        {
            T value = await op;
            return value is true ? "completed" : $"completed with {value}";
        }
        catch (Exception e)
        {
            return Describe(e);
        }
    }

    private static string Try<T>(Func<T> call)
    {
        try
        {
            T value = call();
            return value is bool v ? (v ? "true" : "false") : $"{value}";
        }
        catch (Exception e)
        {
            return Describe(e);
        }
    }

    private static string Describe(Exception e) => e switch
    {
        InteropException i => $"InteropException {i.Status.ToString().ToUpperInvariant()}",
        _ => e.GetType().Name,
    };

    private static async Task<bool> WriteAsValue(ValueTask write)
    {
        await write;
        return true;
    }

    private static async Task<string> WithinBound(Task<string> ending)
    {
        try
        {
            return await ending.WaitAsync(Bound);
        }
        catch (TimeoutException)
        {
            return $"no completion within {Bound.TotalSeconds} s";
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
        catch (Exception)
        {
            return false;
        }
    }

    private static Message Pattern(ulong stream, ulong seq)
    {
        ulong id = MessageChecksum.MakeId(stream, seq);
        byte[] payload = new byte[Payload];
        MessageChecksum.FillPattern(id, payload);
        return new Message(id, payload);
    }
}
