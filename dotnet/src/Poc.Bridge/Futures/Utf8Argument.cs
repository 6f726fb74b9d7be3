using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;

namespace Poc.Bridge.Futures;

/// <summary>
/// A string argument as the NUL-terminated UTF-8 bridge.h expects, for the duration of one native
/// call: encoded into the caller's stack buffer when it fits, else into an ArrayPool array that
/// <see cref="Dispose"/> returns. Pin it with <c>fixed (byte* p = argument)</c>.
/// </summary>
internal ref struct Utf8Argument
{
    private byte[]? _rented;
    private readonly Span<byte> _bytes;

    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="value"/> contains a NUL character.</exception>
    internal Utf8Argument(string value, Span<byte> scratch, string paramName)
    {
        ArgumentNullException.ThrowIfNull(value, paramName);
        if (value.Contains('\0')) throw new ArgumentException("The string contains a NUL character.", paramName);
        int length = Encoding.UTF8.GetByteCount(value);
        Span<byte> buffer = length < scratch.Length ? scratch : (_rented = ArrayPool<byte>.Shared.Rent(length + 1));
        int written = Encoding.UTF8.GetBytes(value, buffer);
        buffer[written] = 0;
        _bytes = buffer[..(written + 1)];
    }

    /// <summary>The first byte, for <c>fixed</c>.</summary>
    public readonly ref byte GetPinnableReference() => ref MemoryMarshal.GetReference(_bytes);

    /// <summary>Returns a rented buffer.</summary>
    public void Dispose()
    {
        if (_rented is null) return;
        ArrayPool<byte>.Shared.Return(_rented);
        _rented = null;
    }
}
