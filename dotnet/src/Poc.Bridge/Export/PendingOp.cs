namespace Poc.Bridge.Export;

/// <summary>
/// One send or receive of an exported channel that returned <c>POC_PENDING</c>. It is also the
/// thread-pool work item that runs its completion, so completing it allocates nothing more; and it
/// is reused: <see cref="Execute"/> hands it back to its channel (<see cref="ExportChannel"/>
/// keeps one spare of each kind) before it calls the importer's callback, so a channel whose ops
/// pend one at a time allocates no op in steady state.
/// </summary>
/// <remarks>
/// <para>Exactly once: while pending, the op is linked in one of its channel's FIFOs
/// (<see cref="PendingOpList"/>), which only code holding the channel's lock touches. Whoever
/// unlinks it under that lock (a send or receive that serves it, cancel, close, release,
/// shutdown) sets <see cref="Status"/> (and, for a receive, the message) and adds it to a
/// <see cref="CompletionBatch"/>; the batch queues it to the thread pool after the lock is
/// released. An op that is no longer linked cannot be found again, so it is queued once and its
/// callback runs once.</para>
/// <para>Reuse: an op is handed back only from its own <see cref="Execute"/>, once it is unlinked
/// and queued, with every field it still needs copied to locals first — from then on only the
/// channel's next op uses it (with a new id: a late cancel of the old id finds nothing).</para>
/// <para>Never under a lock, never inline: <see cref="Execute"/> runs on a thread-pool thread,
/// never inside the importer's call that caused the completion, with no lock of ours held — so
/// the callback may call any port function (bridge.h rule 4).</para>
/// </remarks>
internal abstract unsafe class PendingOp : IThreadPoolWorkItem
{
    protected PendingOp(ExportChannel home) => Home = home;

    /// <summary>(Re)starts the op for a new pending send or receive (under the channel's lock).</summary>
    protected void Start(ulong id, ulong port, void* user)
    {
        Id = id;
        Port = port;
        User = user;
        Status = 0;
        Prev = Next = null;
    }

    /// <summary>The channel whose spare this op becomes once it completed.</summary>
    protected ExportChannel Home { get; }

    /// <summary>The op id written to the importer's <c>*op</c>; never reused by a channel.</summary>
    internal ulong Id { get; private set; }

    /// <summary>Handle of the port that issued the op (cancel reaches only that port's ops).</summary>
    internal ulong Port { get; private set; }

    /// <summary>The importer's <c>user</c> pointer, passed back to its callback.</summary>
    protected void* User { get; private set; }

    /// <summary>Links of the FIFO while pending; <see cref="Next"/> then links the
    /// <see cref="CompletionBatch"/>. Guarded by the channel's lock until the op is queued.</summary>
    internal PendingOp? Prev;

    /// <inheritdoc cref="Prev"/>
    internal PendingOp? Next;

    /// <summary>The outcome, set once by whoever unlinked the op, before it is queued.</summary>
    internal int Status;

    /// <summary>Runs the importer's callback with <see cref="Status"/> (thread pool, no lock held).</summary>
    public abstract void Execute();
}
