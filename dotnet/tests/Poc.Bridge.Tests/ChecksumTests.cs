using Poc.Bridge.Interop;
using Xunit;

namespace Poc.Bridge.Tests;

/// <summary>The .NET checksum (<see cref="MessageChecksum"/>) against the native
/// <c>poc_message_checksum</c>, so .NET agents and tests account for messages like C++ and Rust.</summary>
public sealed class ChecksumTests
{
    public static TheoryData<int> Lengths()
    {
        var lengths = new TheoryData<int>();
        for (int length = 0; length <= 20; length++) lengths.Add(length);
        lengths.Add(4096);
        lengths.Add(4099);
        return lengths;
    }

    [Fact]
    public void SplitMix64_Zero_IsTheReferenceValue() =>
        Assert.Equal(0xE220A8397B1DCDAFUL, MessageChecksum.SplitMix64(0));

    [Theory]
    [MemberData(nameof(Lengths))]
    public unsafe void Of_PayloadLength_EqualsNativeChecksum(int length)
    {
        var random = new Random(length);
        foreach (ulong id in new[] { 0UL, 1UL, MessageChecksum.MakeId(3, (ulong)length), ulong.MaxValue, (ulong)random.NextInt64() })
        {
            byte[] payload = new byte[length];
            random.NextBytes(payload);
            fixed (byte* data = payload)
            {
                var view = new poc_message_view { id = id, data = length == 0 ? null : data, len = (nuint)length };
                Assert.Equal(NativeMethods.poc_message_checksum(&view), MessageChecksum.Of(id, payload));
            }
        }
    }

    [Fact]
    public unsafe void NativeChecksum_NullView_IsZero() => Assert.Equal(0UL, NativeMethods.poc_message_checksum(null));

    [Fact]
    public void Checksum_ProducerPattern_MatchesMessageChecksum()
    {
        ulong id = MessageChecksum.MakeId(5, 42);
        byte[] payload = new byte[13];
        MessageChecksum.FillPattern(id, payload);
        Assert.True(MessageChecksum.CheckPattern(id, payload));
        Assert.Equal(MessageChecksum.Of(id, payload), new Message(id, payload).Checksum());
    }
}
