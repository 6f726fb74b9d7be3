namespace Poc.Bridge.Export;

/// <summary>
/// The process-wide table that turns the 64-bit handles of the ports, futures and lent-function
/// contexts .NET exports into live objects. A handle is resolved here, never dereferenced: a stale, released, forged, foreign or
/// wrong-kind handle simply fails to resolve (bridge.h: <c>POC_INVALID</c>, never a crash).
/// </summary>
/// <remarks>
/// <para>Handle layout (0 is never valid), the same shape as the C++ exporter's with tags of its own:</para>
/// <code>
///   bits 63..56  tag         0xD1 sender, 0xD2 receiver, 0xD3 future, 0xD4 lent-function context
///                            (C++ uses 0xC1/0xC2, Rust 0x52)
///   bits 55..32  generation  1 .. 2^24-1                   (bumped when the slot is released)
///   bits 31..0   index + 1   1 .. 2^31
/// </code>
/// <para>Each live slot holds an immutable <see cref="Entry"/> that carries the full handle it was
/// issued under, so a lookup is one comparison: the tag (kind), generation and index must all match.
/// When a slot's generation would wrap it is retired instead of reused, so a stale handle can never
/// alias a later port.</para>
/// <para>Thread safety: lookups are lock-free (a volatile read of the slot array and of the slot's
/// entry). Insert and the free-list part of remove take <c>s_lock</c>, which is never held while
/// anything else runs. Remove first detaches the entry with a compare-exchange, so of two racing
/// releases of one handle exactly one wins; the loser (like any later release) sees no entry with
/// that handle and answers INVALID. Growing the table copies the references to the
/// <see cref="Slot"/> objects, so a compare-exchange on a slot is never lost to a resize.</para>
/// <para>The table is process-wide, like the C++ and Rust ones, so that a port stays safe to release
/// after its runtime was shut down and disposed (bridge.h rule 8).</para>
/// </remarks>
internal static class PortTable
{
    /// <summary>Tag byte of a sender handle exported by .NET.</summary>
    internal const byte SenderTag = 0xD1;

    /// <summary>Tag byte of a receiver handle exported by .NET.</summary>
    internal const byte ReceiverTag = 0xD2;

    /// <summary>Tag byte of a future handle exported by .NET (<see cref="Poc.Bridge.Futures.ExportedFuture"/>).</summary>
    internal const byte FutureTag = 0xD3;

    /// <summary>Tag byte of the <c>context</c> of a function .NET lends (<see cref="Poc.Bridge.Futures.LentFunctions"/>).</summary>
    internal const byte FunctionTag = 0xD4;

    private const int TagShift = 56;
    private const int GenerationShift = 32;
    private const uint MaxGeneration = (1u << 24) - 1;

    private static readonly Lock s_lock = new();
    private static Slot[] s_slots = new Slot[16];   // replaced (never shrunk) under s_lock
    private static int s_used;                       // slots [0, s_used) exist; guarded by s_lock
    private static readonly Stack<int> s_free = new(); // guarded by s_lock

    /// <summary>Stores <paramref name="target"/> under a new handle with tag <paramref name="tag"/>.</summary>
    /// <exception cref="OutOfMemoryException">The table is full (2^31 slots).</exception>
    internal static ulong Insert(byte tag, object target)
    {
        lock (s_lock)
        {
            int index;
            if (s_free.Count > 0)
            {
                index = s_free.Pop();
            }
            else
            {
                if (s_used == int.MaxValue) throw new OutOfMemoryException("The .NET port table is full.");
                if (s_used == s_slots.Length)
                {
                    var grown = new Slot[Math.Min((long)s_slots.Length * 2, int.MaxValue)];
                    Array.Copy(s_slots, grown, s_used);
                    Volatile.Write(ref s_slots, grown); // readers see either array; both hold the same Slot objects
                }
                index = s_used;
                s_slots[index] = new Slot();
                s_used++;
            }
            Slot slot = s_slots[index];
            ulong handle = ((ulong)tag << TagShift) | ((ulong)slot.Generation << GenerationShift) | ((ulong)(uint)index + 1);
            Volatile.Write(ref slot.Entry, new Entry(handle, target));
            return handle;
        }
    }

    /// <summary>The object stored under <paramref name="handle"/> if it is a live handle with tag
    /// <paramref name="tag"/>; otherwise null.</summary>
    internal static object? Resolve(ulong handle, byte tag)
    {
        if (!TryIndex(handle, tag, out int index)) return null;
        Slot[] slots = Volatile.Read(ref s_slots);
        if ((uint)index >= (uint)slots.Length) return null;
        Slot? slot = Volatile.Read(ref slots[index]);
        if (slot is null) return null;
        Entry? entry = Volatile.Read(ref slot.Entry);
        return entry is not null && entry.Handle == handle ? entry.Target : null;
    }

    /// <summary>Removes <paramref name="handle"/> and returns what it named, or null if it was not
    /// a live handle with tag <paramref name="tag"/>. After this the handle resolves to nothing.</summary>
    internal static object? Remove(ulong handle, byte tag)
    {
        if (!TryIndex(handle, tag, out int index)) return null;
        Slot[] slots = Volatile.Read(ref s_slots);
        if ((uint)index >= (uint)slots.Length) return null;
        Slot? slot = Volatile.Read(ref slots[index]);
        if (slot is null) return null;
        Entry? entry = Volatile.Read(ref slot.Entry);
        if (entry is null || entry.Handle != handle) return null;
        // Exactly one of several racing removals of the same handle detaches the entry.
        if (!ReferenceEquals(Interlocked.CompareExchange(ref slot.Entry, null, entry), entry)) return null;
        lock (s_lock)
        {
            // The slot is empty, so no Insert can touch its generation until it is on the free list.
            if (++slot.Generation <= MaxGeneration) s_free.Push(index);
            // else: retired for good (see the class remarks).
        }
        return entry.Target;
    }

    /// <summary>Number of live handles, for tests and diagnostics.</summary>
    internal static int Count
    {
        get
        {
            lock (s_lock)
            {
                int n = 0;
                for (int i = 0; i < s_used; i++)
                    if (Volatile.Read(ref s_slots[i].Entry) is not null) n++;
                return n;
            }
        }
    }

    /// <summary>Length of the slot array (grows by doubling, never shrinks; diagnostics).</summary>
    internal static int Capacity => Volatile.Read(ref s_slots).Length;

    private static bool TryIndex(ulong handle, byte tag, out int index)
    {
        uint low = (uint)handle;
        index = (int)(low - 1);
        return (handle >> TagShift) == tag && low != 0 && low <= int.MaxValue;
    }

    /// <summary>One slot. Its identity never changes once created, so a resize cannot lose an update.</summary>
    private sealed class Slot
    {
        public Entry? Entry;          // null while free; replaced only by Insert (under s_lock) and Remove (CAS)
        public uint Generation = 1;   // guarded by s_lock; only changes while Entry is null
    }

    /// <summary>What a live slot holds: immutable, compared by the full handle.</summary>
    private sealed class Entry(ulong handle, object target)
    {
        public readonly ulong Handle = handle;
        public readonly object Target = target;
    }
}
