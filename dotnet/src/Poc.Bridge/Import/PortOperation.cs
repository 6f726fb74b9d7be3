// The .NET wake-up adapter: any bridge.h port as a System.Threading.Channels reader or writer.
//
// The handoffs are the numbered steps of docs/contract.md ("Send", "Receive", "Cancel"); in .NET
// terms, for one ReadAsync / WriteAsync / WaitToReadAsync:
//
//   1. The adapter rents a pooled op (SendOperation / ReceiveOperation) and *arms* it: the op gets a
//      fresh `user` token = (sequence << 32) | (slot + 1), where slot is the op's fixed place in
//      OperationTable<T>. No GCHandle and no allocation: the token is a number.
//   2. It calls the port's send/recv with the op's static [UnmanagedCallersOnly] functions and the
//      token. During the call the port handle is kept alive by a SafeHandle reference
//      (ImportedSenderHandle / ImportedReceiverHandle), so a concurrent Complete/Dispose never
//      releases a port another thread is inside (bridge.h calls that misuse).
//   3. OK or an error: no completion will run. For recv, the *deliver* function has already copied
//      the message into the op on this thread (it only borrows the op: it checks the token, never
//      disarms). The op is disarmed and returned to the pool at once; the ValueTask is synchronous.
//   4. PENDING: the op id was written first. The completion (exactly once, on an exporter thread,
//      maybe before send/recv returned) looks the op up by slot, and takes it over only if it can
//      swap the token it was given for 0 (Interlocked.CompareExchange): a stale, duplicated or
//      forged completion finds another token and is ignored (counted in ImportDiagnostics). It
//      does all its work, and as its *last* action completes the ManualResetValueTaskSourceCore
//      (RunContinuationsAsynchronously: the awaiting code never runs on the exporter's thread).
//   5. After PENDING the adapter registers the CancellationToken (cancellation → the port's
//      cancel(op)). Whether the completion already ran does not matter: cancel of a finished op is
//      a harmless request and op ids are never reused by a port. The registration is disposed in
//      GetResult — Dispose waits for a callback that is running — *before* the op is reset and
//      pooled, so a late cancellation can never reach a reused op. That is why cancellable ops
//      can be pooled here, unlike in System.Threading.Channels: a cancellation never completes
//      one of our ops, it only asks the exporter, whose completion is version-checked (step 4).
//   6. A receive that completes with a message after its token fired does not lose it: the
//      completion puts the message in the reader's stash and completes the op as cancelled; the
//      next read takes the stash first (rule 5).
//
// Per message: the received payload is copied into a new byte[] (none for an empty payload); a
// send pins the payload with `fixed` for the duration of the native call only. Nothing else is
// allocated on either path once the pools are warm (a CancellationTokenRegistration is the token
// source's own business).
namespace Poc.Bridge.Import;

/// <summary>
/// Base of the pooled op objects of the import adapter: the op's fixed slot in
/// <see cref="OperationTable{T}"/> and the token that names its current arming.
/// </summary>
/// <remarks>
/// An op is armed once per native call: <see cref="Arm"/> makes a new token, the exporter gets it
/// as <c>user</c>, and exactly one party disarms it — the adapter itself when the call returned
/// without PENDING, or the completion (with <see cref="TryDisarm"/>) after PENDING. The token
/// carries a 32-bit sequence (this is a 64-bit-only bridge: <c>void*</c> is 8 bytes), so a
/// callback that arrives for an earlier arming never matches the current one.
/// </remarks>
internal abstract class PortOperation
{
    private ulong _armed;   // the token of the current arming; 0 while not armed
    private uint _sequence; // armings of this slot so far (carried over when a slot is reused)

    /// <summary>The op's index in its <see cref="OperationTable{T}"/>; fixed while it is listed.</summary>
    internal int Slot { get; private set; } = -1;

    /// <summary>The sequence of the last arming (handed to the next op that gets this slot).</summary>
    internal uint Sequence => _sequence;

    /// <summary>Called by <see cref="OperationTable{T}"/> when the op is listed.</summary>
    internal void Place(int slot, uint sequence)
    {
        Slot = slot;
        _sequence = sequence;
    }

    /// <summary>Arms the op for one native call and returns the <c>user</c> token to pass.</summary>
    internal unsafe void* Arm()
    {
        ulong token = ((ulong)unchecked(++_sequence) << 32) | (uint)(Slot + 1);
        Volatile.Write(ref _armed, token);
        return (void*)token;
    }

    /// <summary>True while the op is armed with <paramref name="token"/> (the deliver function's
    /// check: it borrows the op and leaves it armed).</summary>
    internal bool IsArmedWith(ulong token) => Volatile.Read(ref _armed) == token;

    /// <summary>Takes the op over for the completion of arming <paramref name="token"/>; false when
    /// that arming is not current (stale or duplicated completion).</summary>
    internal bool TryDisarm(ulong token) => Interlocked.CompareExchange(ref _armed, 0, token) == token;

    /// <summary>Disarms after a native call that returned without PENDING (no completion will run).</summary>
    internal void Disarm() => Volatile.Write(ref _armed, 0);
}
