using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace Poc.Bridge.Import;

/// <summary>
/// One pending <c>WriteAsync</c> of a <see cref="PortChannelWriter"/>: the <c>user</c> of the port's
/// <c>send</c>, completed by <see cref="OnComplete"/>; pooled (the protocol is at the top of
/// PortOperation.cs).
/// </summary>
/// <remarks>
/// The core carries the bridge status; GetResult turns it into the exception, on the awaiting
/// thread. Fields other than the core are written by the issuing thread before the native call
/// (or, for the registration, before the ValueTask is handed out) and read by the cancellation
/// callback, the completion and GetResult, which all happen after those writes.
/// </remarks>
internal sealed unsafe class SendOperation : PortOperation, IValueTaskSource
{
    private static readonly Action<object?> s_onCancel = static state => ((SendOperation)state!).RequestCancel();

    private ManualResetValueTaskSourceCore<int> _core = new() { RunContinuationsAsynchronously = true };
    private PortChannelWriter? _writer;
    private CancellationToken _cancellationToken;
    private CancellationTokenRegistration _registration;
    private ulong _opId;
    private int _cancelRequested; // 1 once the token fired while the op was pending

    /// <summary>The completion function handed to every <c>send</c>.</summary>
    internal static delegate* unmanaged<void*, int, void> CompleteFunction =>
        (delegate* unmanaged<void*, int, void>)(delegate* unmanaged[Cdecl]<void*, int, void>)&OnComplete;

    /// <summary>Prepares the op for one send and arms it; returns the <c>user</c> token.</summary>
    internal void* Start(PortChannelWriter writer, CancellationToken cancellationToken)
    {
        _writer = writer;
        _cancellationToken = cancellationToken;
        return Arm();
    }

    /// <summary>The send returned PENDING with op id <paramref name="opId"/>: registers the token and
    /// hands out the ValueTask. The completion may already have run; that is fine (see the remarks
    /// at the top of PortOperation.cs, step 5).</summary>
    internal ValueTask Pending(ulong opId)
    {
        _opId = opId;
        ImportDiagnostics.OnPending();
        if (_cancellationToken.CanBeCanceled)
            _registration = _cancellationToken.UnsafeRegister(s_onCancel, this);
        return new ValueTask(this, _core.Version);
    }

    /// <summary>The send returned without PENDING: no completion will run; back to the pool.</summary>
    internal void Abandon()
    {
        Disarm();
        _writer = null;
        _cancellationToken = default;
        OperationPool<SendOperation>.Return(this);
    }

    /// <inheritdoc/>
    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    /// <inheritdoc/>
    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    /// <inheritdoc/>
    public void GetResult(short token)
    {
        int status = _core.GetResult(token); // throws for a stale token: the ValueTask was consumed already
        PortChannelWriter writer = _writer!;
        bool cancelRequested = Volatile.Read(ref _cancelRequested) != 0;
        CancellationToken cancellationToken = _cancellationToken;

        // Dispose waits for a cancellation callback that is running right now; after it, nothing
        // refers to this op any more and it can be reused.
        _registration.Dispose();
        _registration = default;
        _writer = null;
        _cancellationToken = default;
        _cancelRequested = 0;
        _opId = 0;
        _core.Reset();
        OperationPool<SendOperation>.Return(this);

        if (status != (int)Status.Ok) throw writer.SendFailure(status, cancelRequested, cancellationToken);
    }

    /// <summary>The token fired: ask the port to cancel (a request; the completion still comes).</summary>
    private void RequestCancel()
    {
        Volatile.Write(ref _cancelRequested, 1);
        _writer!.CancelPortOp(_opId);
    }

    /// <summary>bridge.h <c>poc_send_complete_fn</c>: exactly once after PENDING, on an exporter
    /// thread, never under an exporter lock. Takes the op over, then completes it as its last act.</summary>
    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnComplete(void* user, int status)
    {
        try
        {
            SendOperation? op = OperationTable<SendOperation>.Find(user, out ulong token);
            if (op is null || !op.TryDisarm(token))
            {
                ImportDiagnostics.OnStrayCallback();
                return;
            }
            ImportDiagnostics.OnMatchedCompletion();
            op._writer!.OnStatusSeen(status);
            // Last touch of the op: from here on GetResult may run and recycle it. A throwing
            // continuation (e.g. from a SynchronizationContext's Post) is contained below.
            op._core.SetResult(status);
        }
        catch (Exception e)
        {
            ImportDiagnostics.OnContainedException(e);
        }
    }
}
