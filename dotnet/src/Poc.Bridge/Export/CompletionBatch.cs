namespace Poc.Bridge.Export;

/// <summary>
/// The ops completed while a channel's lock was held, chained through <see cref="PendingOp.Next"/>
/// (free once an op left its FIFO), queued to the thread pool by <see cref="Dispatch"/> after the
/// lock is released. A local of the exporter's call; allocates nothing.
/// </summary>
internal struct CompletionBatch
{
    private PendingOp? _head;
    private PendingOp? _tail;

    /// <summary>Records the outcome of an op that was just unlinked (lock held).</summary>
    internal void Add(PendingOp op, Status status)
    {
        op.Status = (int)status;
        op.Next = null;
        if (_tail is not null) _tail.Next = op;
        else _head = op;
        _tail = op;
    }

    /// <summary>Queues every recorded op's completion to the thread pool. Call with no lock held:
    /// queueing may wake a worker, and the completions may start at once.</summary>
    internal void Dispatch()
    {
        PendingOp? op = _head;
        _head = _tail = null;
        while (op is not null)
        {
            PendingOp? next = op.Next; // read before the op can run
            op.Next = null;
            ThreadPool.UnsafeQueueUserWorkItem(op, preferLocal: false);
            op = next;
        }
    }
}
