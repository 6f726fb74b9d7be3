using Poc.Bridge.Export;
using Poc.Bridge.Interop;
using Xunit;
using static Poc.Bridge.Tests.ExportTestHarness;

namespace Poc.Bridge.Tests;

/// <summary>Misuse of the .NET exporter: bad handles, NULL pointers, oversized payloads, and
/// exceptions contained as PANIC. Every case answers a status; none crashes.</summary>
public sealed class ExportHandleTests
{
    public static TheoryData<ulong> ForeignOrForgedHandles => new()
    {
        0UL,
        ulong.MaxValue,
        0xC1_000001_00000001UL, // C++ exporter's sender tag
        0xC2_000001_00000001UL, // C++ exporter's receiver tag
        0x52_000000_00000001UL, // Rust exporter's tag
        0xD1_000000_00000001UL, // our tag, generation 0 (never issued)
        0xD1_000001_00000000UL, // our tag, index 0 (never issued)
        0xD1_FFFFFF_7FFFFFFFUL, // our tag, a slot that does not exist
    };

    [Theory]
    [MemberData(nameof(ForeignOrForgedHandles))]
    public async Task EveryFunction_ForgedOrForeignHandle_ReturnsInvalid(ulong handle)
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        AssertEverySenderFunctionInvalid(tx.WithHandle(handle));
        AssertEveryReceiverFunctionInvalid(rx.WithHandle(handle));
        // The real ports are untouched.
        Assert.Equal((int)Status.Ok, tx.TrySend(1));
        Assert.Equal((int)Status.Ok, rx.TryRecv(new OpRecorder()));
        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal((int)Status.Ok, rx.Release());
    }

    [Fact]
    public async Task EveryFunction_WrongKindHandle_ReturnsInvalid()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        AssertEverySenderFunctionInvalid(tx.WithHandle(rx.Handle));   // a receiver handle on the sender vtable
        AssertEveryReceiverFunctionInvalid(rx.WithHandle(tx.Handle)); // and the other way round
        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal((int)Status.Ok, rx.Release());
    }

    [Fact]
    public async Task EveryFunction_ReleasedHandle_ReturnsInvalidAndDoubleReleaseIsInvalid()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal((int)Status.Ok, rx.Release());
        AssertEverySenderFunctionInvalid(tx);
        AssertEveryReceiverFunctionInvalid(rx);
    }

    [Fact]
    public async Task StaleGeneration_OfALiveSlot_ReturnsInvalidAndTheLivePortWorks()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        // What a handle of an earlier (or later) occupant of the same slots looks like: same tag and
        // index, another generation (bits 55..32).
        const ulong generationOne = 1UL << 32;
        foreach (ulong delta in new[] { generationOne, unchecked(0 - generationOne) })
        {
            AssertEverySenderFunctionInvalid(tx.WithHandle(unchecked(tx.Handle + delta)));
            AssertEveryReceiverFunctionInvalid(rx.WithHandle(unchecked(rx.Handle + delta)));
        }
        Assert.Equal((int)Status.Ok, tx.TrySend(1));
        Assert.Equal((int)Status.Ok, rx.TryRecv(new OpRecorder()));
        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal((int)Status.Ok, rx.Release());
    }

    [Fact]
    public async Task ReleasedSlot_ReusedByANewPort_OldHandleStaysInvalid()
    {
        await using var rt = new DotNetRuntime();
        // Release and re-create until a new sender lands in a slot an old one used (the free list is
        // LIFO and shared with concurrent tests, so this usually takes one round, never many).
        var old = new Dictionary<uint, ulong>(); // index + 1 → released handle
        for (int round = 0; round < 1000; round++)
        {
            var (tx, rx) = CreateRaw(rt, 1);
            if (old.TryGetValue((uint)tx.Handle, out ulong stale))
            {
                Assert.NotEqual(stale, tx.Handle); // same slot, another generation
                AssertEverySenderFunctionInvalid(tx.WithHandle(stale));
                Assert.Equal((int)Status.Ok, tx.TrySend(1)); // the new port is untouched
                Assert.Equal((int)Status.Ok, tx.Release());
                Assert.Equal((int)Status.Ok, rx.Release());
                return;
            }
            Assert.Equal((int)Status.Ok, rx.Release());
            Assert.Equal((int)Status.Ok, tx.Release()); // freed last: the next sender takes its slot
            old[(uint)tx.Handle] = tx.Handle;
        }
        Assert.Fail("no slot was reused in 1000 rounds");
    }

    [Fact]
    public async Task Handles_CreatedReleasedAndResolvedConcurrently_NeverCrossPorts()
    {
        await using var rt = new DotNetRuntime();
        var stale = new System.Collections.Concurrent.ConcurrentBag<(RawSender, RawReceiver)>();
        Task[] workers = Enumerable.Range(0, 4).Select(w => Task.Run(() =>
        {
            for (int i = 0; i < 2000; i++)
            {
                var (tx, rx) = CreateRaw(rt, 1);
                ulong id = ((ulong)w << 32) | (uint)i;
                Assert.Equal((int)Status.Ok, tx.TrySend(id));
                var rec = new OpRecorder();
                Assert.Equal((int)Status.Ok, rx.TryRecv(rec));
                Assert.Equal(id, rec.Received!.Value.Id); // never another channel's message
                rec.Forget();
                // Stale handles of other workers, used while their slots are being reused.
                foreach (var (oldTx, oldRx) in stale.Take(4))
                {
                    Assert.Equal((int)Status.Invalid, oldTx.TrySend(1));
                    Assert.Equal((int)Status.Invalid, oldRx.Close());
                }
                Assert.Equal((int)Status.Ok, tx.Release());
                Assert.Equal((int)Status.Ok, rx.Release());
                if (i % 100 == 0) stale.Add((tx, rx));
            }
        })).ToArray();
        await Task.WhenAll(workers).Within("concurrent create/release");
        Assert.Equal(0, rt.LiveChannelCount);
    }

    [Fact]
    public async Task Release_RacingOnOneHandle_ExactlyOneWins()
    {
        await using var rt = new DotNetRuntime();
        for (int i = 0; i < 500; i++)
        {
            var (tx, rx) = CreateRaw(rt, 1);
            var start = new Barrier(2);
            Task<int> a = Task.Run(() => { start.SignalAndWait(); return tx.Release(); });
            Task<int> b = Task.Run(() => { start.SignalAndWait(); return tx.Release(); });
            int[] results = await Task.WhenAll(a, b).Within("racing releases");
            Assert.Equal(1, results.Count(r => r == (int)Status.Ok));
            Assert.Equal(1, results.Count(r => r == (int)Status.Invalid));
            Assert.Equal((int)Status.Ok, rx.Release());
        }
    }

    [Fact]
    public async Task Send_PayloadOverTheLimit_ReturnsInvalidAndAtTheLimitIsAccepted()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 2, maxPayload: 16);
        Assert.Equal((int)Status.Invalid, tx.TrySend(1, new byte[17]));
        Assert.Equal((int)Status.Invalid, tx.Send(1, new OpRecorder(), out _, new byte[17]));
        Assert.Equal((int)Status.Ok, tx.TrySend(2, new byte[16]));
        var rec = new OpRecorder();
        Assert.Equal((int)Status.Ok, rx.TryRecv(rec));
        Assert.Equal(2UL, rec.Received!.Value.Id); // nothing of the rejected sends was enqueued
        tx.Release();
        rx.Release();
    }

    [Fact]
    public async Task Send_DefaultLimit_IsSixteenMebibytes()
    {
        await using var rt = new DotNetRuntime();
        var (tx, rx) = CreateRaw(rt, 1);
        // Rejected before the (bogus) data pointer is read.
        Assert.Equal((int)Status.Invalid, tx.TrySendView(1, 1, (nuint)NativeMethods.DefaultMaxPayload + 1));
        byte[] big = Pattern(3, NativeMethods.DefaultMaxPayload);
        Assert.Equal((int)Status.Ok, tx.TrySend(3, big));
        var rec = new OpRecorder();
        Assert.Equal((int)Status.Ok, rx.TryRecv(rec));
        Assert.Equal(MessageChecksum.Of(3, big), rec.Received!.Value.Checksum());
        tx.Release();
        rx.Release();
    }

    [Fact]
    public unsafe void EveryFunction_NullPointers_ReturnInvalidAndDoNothing()
    {
        using var scope = new RuntimeScope();
        var (tx, rx) = CreateRaw(scope.Runtime, 1);
        var rec = new OpRecorder();
        var view = new poc_message_view { id = 1, data = null, len = 0 };
        var badView = new poc_message_view { id = 1, data = null, len = 4 }; // NULL data with a length
        ulong op;
        var sv = tx.Port.vtable;
        var rv = rx.Port.vtable;
        Assert.Equal((int)Status.Invalid, sv->try_send(tx.Handle, null));
        Assert.Equal((int)Status.Invalid, sv->try_send(tx.Handle, &badView));
        Assert.Equal((int)Status.Invalid, tx.SendRaw(null, TestCallbacks.SendComplete, rec.User, &op));
        Assert.Equal((int)Status.Invalid, tx.SendRaw(&badView, TestCallbacks.SendComplete, rec.User, &op));
        Assert.Equal((int)Status.Invalid, tx.SendRaw(&view, null, rec.User, &op));
        Assert.Equal((int)Status.Invalid, tx.SendRaw(&view, TestCallbacks.SendComplete, rec.User, null));
        Assert.Equal((int)Status.Invalid, sv->clone(tx.Handle, null));
        Assert.Equal((int)Status.Invalid, rv->try_recv(rx.Handle, null, rec.User));
        Assert.Equal((int)Status.Invalid, rx.RecvRaw(null, TestCallbacks.RecvComplete, rec.User, &op));
        Assert.Equal((int)Status.Invalid, rx.RecvRaw(TestCallbacks.Deliver, null, rec.User, &op));
        Assert.Equal((int)Status.Invalid, rx.RecvRaw(TestCallbacks.Deliver, TestCallbacks.RecvComplete, rec.User, null));
        // Nothing was enqueued, nothing registered.
        Assert.Equal((int)Status.Empty, rx.TryRecv(new OpRecorder()));
        Assert.Equal((int)Status.Ok, tx.TrySend(2));
        Assert.Equal((int)Status.Ok, rx.TryRecv(new OpRecorder()));
        tx.Release();
        rx.Release();
        Assert.Equal(0, rec.Completions);
        Assert.Equal(0, rec.Delivers);
    }

    [Fact]
    public unsafe void EveryFunction_ExceptionInside_IsContainedAsPanic()
    {
        using var scope = new RuntimeScope();
        var (tx, rx) = CreateRaw(scope.Runtime, 1);
        var sv = tx.Port.vtable;
        var rv = rx.Port.vtable;
        var view = new poc_message_view { id = 1 };
        ulong op;
        poc_sender clone;
        var rec = new OpRecorder();
        // Each call consumes the injected fault: it throws inside the guard, before anything happens.
        ExportVTables.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, sv->try_send(tx.Handle, &view));
        ExportVTables.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, sv->send(tx.Handle, &view, TestCallbacks.SendComplete, rec.User, &op));
        ExportVTables.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, sv->cancel(tx.Handle, 1));
        ExportVTables.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, sv->close(tx.Handle));
        ExportVTables.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, sv->clone(tx.Handle, &clone));
        ExportVTables.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, sv->release(tx.Handle));
        ExportVTables.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, rv->try_recv(rx.Handle, TestCallbacks.Deliver, rec.User));
        ExportVTables.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, rv->recv(rx.Handle, TestCallbacks.Deliver, TestCallbacks.RecvComplete, rec.User, &op));
        ExportVTables.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, rv->cancel(rx.Handle, 1));
        ExportVTables.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, rv->close(rx.Handle));
        ExportVTables.t_faultOnNextCall = true;
        Assert.Equal((int)Status.Panic, rv->release(rx.Handle));
        Assert.False(ExportVTables.t_faultOnNextCall);
        // The ports still work: the faults happened before anything else.
        Assert.Equal((int)Status.Ok, tx.TrySend(1));
        Assert.Equal((int)Status.Ok, rx.TryRecv(new OpRecorder()));
        Assert.Equal((int)Status.Ok, tx.Release());
        Assert.Equal((int)Status.Ok, rx.Release());
        Assert.Equal(0, rec.Completions);
    }

    private static void AssertEverySenderFunctionInvalid(RawSender tx)
    {
        var rec = new OpRecorder();
        Assert.Equal((int)Status.Invalid, tx.TrySend(1));
        Assert.Equal((int)Status.Invalid, tx.Send(1, rec, out _));
        Assert.Equal((int)Status.Invalid, tx.Cancel(1));
        Assert.Equal((int)Status.Invalid, tx.Close());
        Assert.Equal((int)Status.Invalid, tx.Clone(out _));
        Assert.Equal((int)Status.Invalid, tx.Release());
        Assert.Equal(0, rec.Completions);
    }

    private static void AssertEveryReceiverFunctionInvalid(RawReceiver rx)
    {
        var rec = new OpRecorder();
        Assert.Equal((int)Status.Invalid, rx.TryRecv(rec));
        Assert.Equal((int)Status.Invalid, rx.Recv(rec, out _));
        Assert.Equal((int)Status.Invalid, rx.Cancel(1));
        Assert.Equal((int)Status.Invalid, rx.Close());
        Assert.Equal((int)Status.Invalid, rx.Release());
        Assert.Equal(0, rec.Completions);
        Assert.Equal(0, rec.Delivers);
    }
}
