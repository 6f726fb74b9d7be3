namespace Poc.Scenarios;

/// <summary>What the command line asked for. A scenario uses the knobs that make sense for it.</summary>
internal sealed record ScenarioOptions
{
    /// <summary>How much work: messages to send, or calls to make (<c>--messages</c>).</summary>
    public long? Messages { get; init; }

    /// <summary>Payload bytes per message (<c>--payload</c>).</summary>
    public int? Payload { get; init; }

    /// <summary>Channel capacity (<c>--capacity</c>).</summary>
    public int? Capacity { get; init; }

    /// <summary>Print more detail (<c>--verbose</c>).</summary>
    public bool Verbose { get; init; }

    /// <summary>Where to append one result line per scenario (<c>--result-file</c>, for scripts/run).</summary>
    public string? ResultFile { get; init; }
}

/// <summary>One scenario: a protocol between runtimes that checks its own invariants.</summary>
internal abstract class Scenario
{
    /// <summary>The name on the command line.</summary>
    public abstract string Name { get; }

    /// <summary>The runtimes involved, for the summary table.</summary>
    public abstract string Runtimes { get; }

    /// <summary>One line for <c>--list</c>.</summary>
    public abstract string Description { get; }

    /// <summary>Runs the scenario; every broken invariant is reported through
    /// <see cref="ScenarioContext.Check"/> or <see cref="ScenarioContext.Fail"/>.</summary>
    public abstract Task RunAsync(ScenarioContext context);
}

/// <summary>Output and invariant bookkeeping of one scenario run.</summary>
internal sealed class ScenarioContext(ScenarioOptions options, TextWriter output)
{
    public ScenarioOptions Options { get; } = options;

    public TextWriter Output { get; } = output;

    /// <summary>Invariants checked so far.</summary>
    public int Checks { get; private set; }

    /// <summary>Invariants that did not hold.</summary>
    public int Failures { get; private set; }

    /// <summary>What the summary table shows as the work done (e.g. "48 calls").</summary>
    public string Work { get; set; } = "";

    /// <summary>Checks one invariant; prints it when it broke (or always with --verbose).</summary>
    public bool Check(bool holds, string invariant)
    {
        Checks++;
        if (!holds)
        {
            Failures++;
            Output.WriteLine($"    FAILED: {invariant}");
        }
        else if (Options.Verbose)
        {
            Output.WriteLine($"    held: {invariant}");
        }
        return holds;
    }

    /// <summary>Records a broken invariant.</summary>
    public void Fail(string why) => Check(false, why);

    public void Line(string text) => Output.WriteLine(text);
}
