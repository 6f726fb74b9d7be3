namespace Poc.Bridge.Export;

/// <summary>
/// An intrusive doubly linked FIFO of pending ops (oldest first), so that linking and unlinking an
/// op allocates nothing. Not thread-safe: its channel's lock guards it.
/// </summary>
internal sealed class PendingOpList
{
    /// <summary>The oldest op, or null when empty.</summary>
    internal PendingOp? Head { get; private set; }

    private PendingOp? _tail;

    /// <summary>True when no op is linked.</summary>
    internal bool IsEmpty => Head is null;

    /// <summary>Links <paramref name="op"/> as the newest op.</summary>
    internal void Add(PendingOp op)
    {
        op.Prev = _tail;
        op.Next = null;
        if (_tail is not null) _tail.Next = op;
        else Head = op;
        _tail = op;
    }

    /// <summary>Unlinks <paramref name="op"/>, which must be linked here.</summary>
    internal void Remove(PendingOp op)
    {
        if (op.Prev is not null) op.Prev.Next = op.Next;
        else Head = op.Next;
        if (op.Next is not null) op.Next.Prev = op.Prev;
        else _tail = op.Prev;
        op.Prev = op.Next = null;
    }

    /// <summary>The op with id <paramref name="id"/> issued by port <paramref name="port"/>, or null.
    /// Linear: a channel rarely has more than a few pending ops (one per awaiting sender or receive).</summary>
    internal PendingOp? Find(ulong id, ulong port)
    {
        for (PendingOp? op = Head; op is not null; op = op.Next)
            if (op.Id == id && op.Port == port) return op;
        return null;
    }
}
