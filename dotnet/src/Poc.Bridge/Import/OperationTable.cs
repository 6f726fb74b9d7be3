namespace Poc.Bridge.Import;

/// <summary>
/// Where a native callback finds the op its <c>user</c> token names: a growable array of ops,
/// indexed by <see cref="PortOperation.Slot"/>. Lookups take no lock.
/// </summary>
/// <remarks>
/// Ops are listed when created and stay listed while pooled, so a token stays resolvable for as
/// long as an op can be armed. An op that the pool does not keep is unlisted and its slot, with its
/// last sequence, goes to the next new op: tokens never repeat for one slot, so a stale callback
/// cannot match a later op. Growth copies the array; a callback reading an older copy still finds
/// every op listed before its arming, because arming happens after listing and the exporter's own
/// synchronisation orders our native call before its callback.
/// </remarks>
internal static unsafe class OperationTable<T> where T : PortOperation
{
    private static readonly Lock s_lock = new();
    private static readonly Stack<(int Slot, uint Sequence)> s_free = new(); // under s_lock
    private static T?[] s_ops = new T?[16];                                    // written under s_lock
    private static int s_used;                                                 // under s_lock

    /// <summary>Lists a new op, giving it a slot.</summary>
    internal static void Add(T op)
    {
        lock (s_lock)
        {
            (int slot, uint sequence) = s_free.TryPop(out var free) ? free : (s_used++, 0u);
            if (slot == s_ops.Length)
            {
                var bigger = new T?[s_ops.Length * 2];
                Array.Copy(s_ops, bigger, s_ops.Length);
                Volatile.Write(ref s_ops, bigger);
            }
            op.Place(slot, sequence);
            Volatile.Write(ref s_ops[slot], op);
        }
    }

    /// <summary>Unlists an op that is not armed and will not be used again.</summary>
    internal static void Remove(T op)
    {
        lock (s_lock)
        {
            s_ops[op.Slot] = null;
            s_free.Push((op.Slot, op.Sequence));
        }
    }

    /// <summary>The op currently armed with <paramref name="user"/>, or null (a stale or forged token).</summary>
    internal static T? Find(void* user, out ulong token)
    {
        token = (ulong)user;
        int slot = (int)(uint)token - 1;
        T?[] ops = Volatile.Read(ref s_ops);
        if ((uint)slot >= (uint)ops.Length) return null;
        T? op = Volatile.Read(ref ops[slot]);
        return op is not null && op.IsArmedWith(token) ? op : null;
    }

    /// <summary>Length of the slot array (it grows by doubling and never shrinks; diagnostics).</summary>
    internal static int Capacity => Volatile.Read(ref s_ops).Length;

    /// <summary>Ops listed now (tests).</summary>
    internal static int Count
    {
        get { lock (s_lock) return s_used - s_free.Count; }
    }
}
