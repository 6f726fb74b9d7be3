namespace Poc.Bridge;

/// <summary>
/// A bridge operation ended with a status that has no closer .NET exception: <see cref="Status.Panic"/>
/// (the other runtime's code failed and the failure was contained), <see cref="Status.Shutdown"/>
/// (the runtime that owns the channel is stopping), or a status the contract does not allow here.
/// </summary>
public sealed class InteropException : Exception
{
    /// <summary>Creates the exception for <paramref name="status"/> with a message saying what failed.</summary>
    public InteropException(Status status, string message)
        : base($"{message}: {status.ToString().ToUpperInvariant()}")
    {
        Status = status;
    }

    /// <summary>The bridge.h status the operation ended with.</summary>
    public Status Status { get; }
}
