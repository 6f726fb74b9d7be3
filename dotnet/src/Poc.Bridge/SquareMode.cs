namespace Poc.Bridge;

/// <summary>
/// How a call of the example "square" function finishes (bridge.h <c>POC_SQUARE_*</c>):
/// <see cref="ExportedFunction.Square"/>, <see cref="RustCalls.SquareFunction"/>,
/// <see cref="CppCalls.SquareFunction"/>.
/// </summary>
public enum SquareMode
{
    /// <summary><c>POC_SQUARE_READY</c>: computed inside the call; the first poll answers at once,
    /// with no wake and no thread hop.</summary>
    Ready = 0,

    /// <summary><c>POC_SQUARE_POSTED</c>: finished by another thread of the lender's runtime as soon
    /// as it can (the .NET thread pool for <see cref="ExportedFunction.Square"/>); the wake comes
    /// from that thread.</summary>
    Posted = 1,

    /// <summary><c>POC_SQUARE_TIMER</c>: finished by the lender runtime's timer after the delay
    /// given when the function was made.</summary>
    Timer = 2,
}
