namespace Poc.Bridge;

/// <summary>
/// An async call into another runtime finished with an application error (bridge.h
/// <c>POC_ERROR</c>: a Rust <c>Err</c>, …): the error's code and message, as the callee gave them.
/// </summary>
public sealed class RemoteCallException : Exception
{
    /// <summary>Creates the exception for the error <paramref name="code"/> / <paramref name="remoteMessage"/>
    /// of the call <paramref name="call"/>.</summary>
    public RemoteCallException(string call, int code, string remoteMessage)
        : base($"{call} failed with error {code}: {remoteMessage}")
    {
        Call = call;
        Code = code;
        RemoteMessage = remoteMessage;
    }

    /// <summary>The call that failed (e.g. "fetch_user").</summary>
    public string Call { get; }

    /// <summary>The error code (the delivered value's id), e.g. 404.</summary>
    public int Code { get; }

    /// <summary>The error message as the callee gave it (the delivered value's UTF-8 data).</summary>
    public string RemoteMessage { get; }
}
