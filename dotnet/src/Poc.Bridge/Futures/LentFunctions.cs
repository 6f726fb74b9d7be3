using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Poc.Bridge.Export;
using Poc.Bridge.Interop;

namespace Poc.Bridge.Futures;

/// <summary>
/// The <c>poc_async_fn</c>s .NET lends to native code (bridge.h "Section - Futures"): one per
/// <see cref="ExportedFunction"/> handed over, each with a fresh <c>context</c> that the holder
/// gives back with <c>release</c> exactly once.
/// </summary>
/// <remarks>
/// <para>The context is not a GCHandle but a tag-0xD4 handle of <see cref="PortTable"/> (index +
/// generation) naming the function: a <c>call</c> with a released or forged context answers
/// <c>POC_INVALID</c> and a second <c>release</c> is only counted
/// (<see cref="FutureExportDiagnostics.StrayReleases"/>) — misuse is never memory corruption.</para>
/// <para><c>call</c> copies the argument, starts the body through <see cref="ExportedFuture.Start"/>
/// and writes the call's future; it never waits for the body's work. Any thread, concurrently.
/// Exceptions never escape: <c>call</c> answers <c>POC_PANIC</c>, both count them in
/// <see cref="FutureExportDiagnostics.ContainedExceptions"/>.</para>
/// </remarks>
internal static unsafe class LentFunctions
{
    /// <summary>Tests: makes the next <c>call</c> on this thread throw inside its guard.</summary>
    [ThreadStatic] internal static bool t_faultOnNextCall;

    private static long s_live;

    /// <summary>Contexts lent and not released yet (tests).</summary>
    internal static long LiveContexts => Volatile.Read(ref s_live);

    /// <summary>A fresh <c>poc_async_fn</c> for <paramref name="function"/>, owned by whoever gets it.</summary>
    /// <exception cref="OutOfMemoryException">The handle table is full.</exception>
    internal static poc_async_fn Lend(ExportedFunction function)
    {
        ulong context = PortTable.Insert(PortTable.FunctionTag, function);
        Interlocked.Increment(ref s_live);
        return new poc_async_fn
        {
            call = (delegate* unmanaged<void*, poc_message_view*, poc_future*, int>)
                (delegate* unmanaged[Cdecl]<void*, poc_message_view*, poc_future*, int>)&Call,
            release = (delegate* unmanaged<void*, void>)(delegate* unmanaged[Cdecl]<void*, void>)&Release,
            context = (void*)context,
        };
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Call(void* context, poc_message_view* argument, poc_future* @out)
    {
        try
        {
            if (t_faultOnNextCall)
            {
                t_faultOnNextCall = false;
                throw new InvalidOperationException("Injected fault (expected by the test).");
            }
            if (argument == null || @out == null) return (int)Status.Invalid;
            if (argument->len > int.MaxValue || (argument->len != 0 && argument->data == null)) return (int)Status.Invalid;
            if (PortTable.Resolve((ulong)context, PortTable.FunctionTag) is not ExportedFunction function)
                return (int)Status.Invalid;
            Message message = argument->len == 0
                ? new Message(argument->id)
                : new Message(argument->id, new ReadOnlySpan<byte>(argument->data, (int)argument->len).ToArray());
            *@out = function.Start(message);
            return (int)Status.Ok;
        }
        catch (Exception e)
        {
            FutureExportDiagnostics.OnContainedException(e);
            return (int)Status.Panic;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void Release(void* context)
    {
        try
        {
            if (PortTable.Remove((ulong)context, PortTable.FunctionTag) is null)
            {
                FutureExportDiagnostics.OnStrayRelease();
                return;
            }
            Interlocked.Decrement(ref s_live);
        }
        catch (Exception e)
        {
            FutureExportDiagnostics.OnContainedException(e);
        }
    }
}
