using Poc.Bridge.Interop;

namespace Poc.Bridge;

/// <summary>
/// An async function that can be lent across the bridge (bridge.h <c>poc_async_fn</c>: a callback
/// interface with one async method, <c>Message → Message</c>): either a .NET async method lent to
/// native code (<see cref="ExportedFunction"/>) or a function native code lent to .NET
/// (<see cref="ImportedFunction"/>). Functions such as <see cref="RustCalls.SumCallsAsync"/> take
/// either.
/// </summary>
public abstract class AsyncFunction
{
    private protected AsyncFunction(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
    }

    /// <summary>The function's name, used in exception messages (e.g. "square").</summary>
    public string Name { get; }

    /// <summary>
    /// A <c>poc_async_fn</c> for native code that takes it over (it calls its <c>release</c>
    /// exactly once). An <see cref="ExportedFunction"/> lends a fresh one each time; an
    /// <see cref="ImportedFunction"/> hands over the one it owns and is disposed afterwards.
    /// </summary>
    /// <exception cref="ObjectDisposedException">An <see cref="ImportedFunction"/> already disposed or handed over.</exception>
    internal abstract poc_async_fn Lend();
}
