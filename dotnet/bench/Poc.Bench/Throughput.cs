using System.Diagnostics;
using System.Threading.Channels;
using Poc.Bridge;

namespace Poc.Bench;

/// <summary>One throughput figure: producer agent in P → channel owned by O → consumer agent in C.</summary>
internal sealed record ThroughputRow(string Producer, string Owner, string Consumer, int Payload, int Capacity,
    Stats Poc, Stats Native, string NativeKind, bool NativeIsReal)
{
    public double Ratio => Poc.Median / Native.Median;
}

/// <summary>The 27-combination throughput matrix and the .NET native channel baseline.</summary>
internal static class Throughput
{
    public static readonly int[] Payloads = [0, 64, 4096];

    public static int Figures => Payloads.Length * (27 + 1);

    public static async Task<List<ThroughputRow>> RunAsync(IBridgeRuntime[] rts, BenchConfig cfg, NativeResults native,
        Progress progress)
    {
        var rows = new List<ThroughputRow>();
        ulong messages = cfg.ThroughputMessages;
        int runs = cfg.ThroughputRuns;
        foreach (int payload in Payloads)
        {
            var nativeDotNet = await Measure.RunsAsync(() => NativeDotNetOnce(messages, payload), runs);
            progress.Step($".NET native Channel payload {payload}: {nativeDotNet.Median:F0} msg/s");
            var sameRuntime = new Dictionary<string, Stats>();
            var combos = new List<(int P, int O, int C, Stats S)>();
            for (int p = 0; p < 3; p++)
            for (int o = 0; o < 3; o++)
            for (int c = 0; c < 3; c++)
            {
                var (rp, ro, rc) = (rts[p], rts[o], rts[c]);
                var s = await Measure.RunsAsync(() => PocOnce(rp, ro, rc, messages, payload), runs);
                combos.Add((p, o, c, s));
                if (p == o && o == c) sameRuntime[ro.Name] = s;
                progress.Step($"{rp.Name} -> {ro.Name} channel -> {rc.Name} payload {payload}: {s.Median:F0} msg/s");
            }
            foreach (var (p, o, c, s) in combos)
            {
                string owner = rts[o].Name;
                Stats baseline;
                string kind;
                bool real;
                if (owner == ".NET")
                {
                    (baseline, kind, real) = (nativeDotNet, "System.Threading.Channels bounded, producer/consumer Tasks", true);
                }
                else if (native.Throughput(owner, payload) is { } nt)
                {
                    (baseline, kind, real) = (nt.Stats, nt.What, true);
                }
                else
                {
                    (baseline, kind, real) = (sameRuntime[owner],
                        $"proxy: Poc same-runtime ({owner} agents on {owner} channel)", false);
                }
                rows.Add(new ThroughputRow(rts[p].Name, owner, rts[c].Name, payload, BenchConfig.ThroughputCapacity, s,
                    baseline, kind, real));
            }
        }
        return rows;
    }

    private static async Task<double> PocOnce(IBridgeRuntime p, IBridgeRuntime o, IBridgeRuntime c, ulong n, int payload)
    {
        var (sender, receiver) = o.CreateChannel(BenchConfig.ThroughputCapacity);
        var sw = Stopwatch.StartNew();
        var consumer = c.RunConsumerAsync(receiver);
        var producer = p.RunProducerAsync(sender, 1, n, payload);
        var pr = await producer;
        var cr = await consumer;
        double secs = sw.Elapsed.TotalSeconds;
        if (pr.Status != Status.Ok || cr.Messages != n || cr.OrderErrors != 0)
            throw new InvalidOperationException(
                $"{p.Name}->{o.Name}->{c.Name}: producer {pr}, consumer {cr}, expected {n} messages");
        return n / secs;
    }

    private static async Task<double> NativeDotNetOnce(ulong n, int payload)
    {
        var ch = Channel.CreateBounded<Message>(new BoundedChannelOptions(BenchConfig.ThroughputCapacity)
        { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
        var sw = Stopwatch.StartNew();
        var consumer = Task.Run(async () =>
        {
            ulong count = 0, sum = 0;
            await foreach (var m in ch.Reader.ReadAllAsync()) { count++; sum += m.Checksum(); }
            return (count, sum);
        });
        var producer = Task.Run(async () =>
        {
            for (ulong i = 0; i < n; i++)
            {
                ulong id = MessageChecksum.MakeId(1, i);
                byte[] buf = payload == 0 ? [] : new byte[payload];
                if (payload > 0) MessageChecksum.FillPattern(id, buf);
                await ch.Writer.WriteAsync(new Message(id, buf));
            }
            ch.Writer.Complete();
        });
        await producer;
        var (got, _) = await consumer;
        double secs = sw.Elapsed.TotalSeconds;
        if (got != n) throw new InvalidOperationException($"native .NET: {got} of {n}");
        return n / secs;
    }
}
