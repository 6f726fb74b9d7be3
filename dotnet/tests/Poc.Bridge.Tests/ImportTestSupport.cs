using Xunit;

namespace Poc.Bridge.Tests;

/// <summary>Helpers of the import and native-runtime tests: every wait is bounded, and runtimes
/// are made by name so that tests can run over every owner.</summary>
internal static class ImportTestSupport
{
    /// <summary>How long any single wait of these tests may take before the test fails.</summary>
    internal static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    /// <summary>Awaits <paramref name="task"/> for at most <see cref="Limit"/>.</summary>
    internal static async Task<T> Within<T>(this Task<T> task, string what)
    {
        try
        {
            return await task.WaitAsync(Limit);
        }
        catch (TimeoutException) when (!task.IsCompleted)
        {
            throw new TimeoutException($"Timed out after {Limit.TotalSeconds} s waiting for {what}.");
        }
    }

    /// <summary>Awaits <paramref name="task"/> for at most <see cref="Limit"/>.</summary>
    internal static async Task Within(this Task task, string what)
    {
        try
        {
            await task.WaitAsync(Limit);
        }
        catch (TimeoutException) when (!task.IsCompleted)
        {
            throw new TimeoutException($"Timed out after {Limit.TotalSeconds} s waiting for {what}.");
        }
    }

    /// <summary>Awaits <paramref name="task"/> for at most <see cref="Limit"/>.</summary>
    internal static Task<T> Within<T>(this ValueTask<T> task, string what) => task.AsTask().Within(what);

    /// <summary>Awaits <paramref name="task"/> for at most <see cref="Limit"/>.</summary>
    internal static Task Within(this ValueTask task, string what) => task.AsTask().Within(what);

    /// <summary>A native runtime by name: "C++" or "Rust".</summary>
    internal static IBridgeRuntime CreateNative(string name, int threads = 2) => name switch
    {
        "C++" => new CppRuntime(threads),
        "Rust" => new RustRuntime(threads),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "expected C++ or Rust"),
    };

    /// <summary>A message of the producer convention: stream/seq id and the pattern payload.</summary>
    internal static Message PatternMessage(ulong stream, ulong seq, int payloadLength)
    {
        ulong id = MessageChecksum.MakeId(stream, seq);
        byte[] payload = new byte[payloadLength];
        MessageChecksum.FillPattern(id, payload);
        return new Message(id, payload);
    }

    /// <summary>Asserts that the report is a normal end with the given count and checksum.</summary>
    internal static void AssertReport(AgentReport report, ulong messages, ulong checksum, string who)
    {
        Assert.True(report.Status == Status.Ok, $"{who} ended with {report.Status}");
        Assert.True(report.Messages == messages, $"{who} counted {report.Messages} messages, expected {messages}");
        Assert.True(report.Checksum == checksum, $"{who} checksum {report.Checksum:X16}, expected {checksum:X16}");
        Assert.True(report.OrderErrors == 0, $"{who} saw {report.OrderErrors} order errors");
    }
}
