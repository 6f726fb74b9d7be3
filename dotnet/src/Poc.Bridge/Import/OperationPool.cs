using System.Collections.Concurrent;

namespace Poc.Bridge.Import;

/// <summary>
/// The pool of reusable ops of one kind, shared by every reader or writer. Renting and returning
/// allocate nothing once warm; an op the pool has no room for is unlisted from
/// <see cref="OperationTable{T}"/> and left to the GC.
/// </summary>
/// <remarks>An op is returned only when it is disarmed, its ValueTask has been consumed (or never
/// handed out) and its cancellation registration has been disposed: nothing can reach it any more.</remarks>
internal static class OperationPool<T> where T : PortOperation, new()
{
    private static readonly int s_capacity = Math.Max(32, Environment.ProcessorCount * 8);
    private static readonly ConcurrentQueue<T> s_items = new();
    private static T? s_fast;  // one op kept outside the queue: the common sequential case
    private static int s_count; // ops in s_items (approximate while racing, bounded by s_capacity)

    /// <summary>Ops kept by the pool now (the queue and the fast slot; approximate while racing).</summary>
    internal static int Count => Math.Max(0, Volatile.Read(ref s_count)) + (Volatile.Read(ref s_fast) is null ? 0 : 1);

    /// <summary>A pooled op, or a new listed one.</summary>
    internal static T Rent()
    {
        T? op = Interlocked.Exchange(ref s_fast, null);
        if (op is not null) return op;
        if (s_items.TryDequeue(out op))
        {
            Interlocked.Decrement(ref s_count);
            return op;
        }
        op = new T();
        OperationTable<T>.Add(op);
        return op;
    }

    /// <summary>Gives back an op nothing refers to any more.</summary>
    internal static void Return(T op)
    {
        if (Interlocked.CompareExchange(ref s_fast, op, null) is null) return;
        if (Interlocked.Increment(ref s_count) <= s_capacity)
        {
            s_items.Enqueue(op);
            return;
        }
        Interlocked.Decrement(ref s_count);
        OperationTable<T>.Remove(op);
    }
}
