using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Poc.Bridge;

/// <summary>
/// A message as .NET code sees it: a 64-bit id and a payload. What a receive copies out of the
/// borrowed bridge.h <c>poc_message_view</c>; an empty payload costs no allocation.
/// </summary>
/// <param name="Id">The message id (agents use <c>stream &lt;&lt; 48 | seq</c>).</param>
/// <param name="Payload">The payload bytes.</param>
public readonly record struct Message(ulong Id, ReadOnlyMemory<byte> Payload)
{
    /// <summary>A message with no payload.</summary>
    public Message(ulong id) : this(id, ReadOnlyMemory<byte>.Empty) { }

    /// <summary>The contract's checksum of this message (docs/contract.md); equal to bridge.h
    /// <c>poc_message_checksum</c>.</summary>
    public ulong Checksum() => MessageChecksum.Of(Id, Payload.Span);
}

/// <summary>
/// The checksum, id convention and payload pattern shared by every runtime's agents and tests
/// (docs/contract.md, "Messages").
/// </summary>
public static class MessageChecksum
{
    /// <summary>Bits of an agent message id that hold the sequence number.</summary>
    public const int StreamShift = 48;

    /// <summary>Mask of the sequence number in an agent message id.</summary>
    public const ulong SeqMask = (1UL << StreamShift) - 1;

    /// <summary>Id of message <paramref name="seq"/> of producer stream <paramref name="stream"/>.</summary>
    public static ulong MakeId(ulong stream, ulong seq) => (stream << StreamShift) | (seq & SeqMask);

    /// <summary>The splitmix64 finaliser, the mixing step of the checksum.</summary>
    public static ulong SplitMix64(ulong x)
    {
        ulong z = unchecked(x + 0x9E3779B97F4A7C15UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }

    /// <summary>splitmix64(id) + splitmix64(len) + the payload as little-endian 64-bit words (the
    /// last zero-padded), all wrapping.</summary>
    public static ulong Of(ulong id, ReadOnlySpan<byte> payload)
    {
        ulong sum = unchecked(SplitMix64(id) + SplitMix64((ulong)payload.Length));
        ReadOnlySpan<ulong> words = MemoryMarshal.Cast<byte, ulong>(payload);
        foreach (ulong w in words)
            sum = unchecked(sum + (BitConverter.IsLittleEndian ? w : BinaryPrimitives.ReverseEndianness(w)));
        int rest = payload.Length - words.Length * 8;
        if (rest > 0)
        {
            Span<byte> last = stackalloc byte[8];
            last.Clear();
            payload[^rest..].CopyTo(last);
            sum = unchecked(sum + BinaryPrimitives.ReadUInt64LittleEndian(last));
        }
        return sum;
    }

    /// <summary>Fills <paramref name="payload"/> with the producer pattern: byte i is (byte)(id + i).</summary>
    public static void FillPattern(ulong id, Span<byte> payload)
    {
        for (int i = 0; i < payload.Length; i++) payload[i] = unchecked((byte)(id + (ulong)i));
    }

    /// <summary>True when <paramref name="payload"/> follows the producer pattern for <paramref name="id"/>.</summary>
    public static bool CheckPattern(ulong id, ReadOnlySpan<byte> payload)
    {
        for (int i = 0; i < payload.Length; i++)
            if (payload[i] != unchecked((byte)(id + (ulong)i))) return false;
        return true;
    }
}
