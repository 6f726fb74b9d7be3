// The C ABI of native-cpp/include/poc/bridge.h, declared for .NET.
//
// Written by hand (CppSharp, which would generate it, is not on the package feed here); the test
// NativeDeclarationTests reads bridge.h and fails when a name, a parameter count, a parameter
// size or a struct layout here drifts from the header. Names are the C names on purpose: the
// check compares them one to one. Only the adapters use these types; nothing here is public.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Poc.Bridge.Interop;

/// <summary>bridge.h <c>poc_message_view</c>: a borrowed message, valid only for the call that
/// carries it.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct poc_message_view
{
    public ulong id;
    public byte* data;
    public nuint len;
}

/// <summary>bridge.h <c>poc_sender</c>: a sender port, passed by value.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct poc_sender
{
    public ulong handle;
    public poc_sender_vtable* vtable;
}

/// <summary>bridge.h <c>poc_receiver</c>: a receiver port, passed by value.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct poc_receiver
{
    public ulong handle;
    public poc_receiver_vtable* vtable;
}

/// <summary>bridge.h <c>poc_future</c>: an exported future, passed by value.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct poc_future
{
    public ulong handle;
    public poc_future_vtable* vtable;
}

/// <summary>bridge.h <c>poc_sender_vtable</c>. Statuses are <c>int</c> (<c>poc_status</c>);
/// completion functions are <c>poc_send_complete_fn(void* user, poc_status)</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct poc_sender_vtable
{
    public uint abi_version;
    public uint size;
    public delegate* unmanaged<ulong, poc_message_view*, int> try_send;
    public delegate* unmanaged<ulong, poc_message_view*, delegate* unmanaged<void*, int, void>, void*, ulong*, int> send;
    public delegate* unmanaged<ulong, ulong, int> cancel;
    public delegate* unmanaged<ulong, int> close;
    public delegate* unmanaged<ulong, poc_sender*, int> clone;
    public delegate* unmanaged<ulong, int> release;
}

/// <summary>bridge.h <c>poc_receiver_vtable</c>. Deliver and completion functions are
/// <c>poc_recv_complete_fn(void* user, poc_status, const poc_message_view*)</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct poc_receiver_vtable
{
    public uint abi_version;
    public uint size;
    public delegate* unmanaged<ulong, delegate* unmanaged<void*, int, poc_message_view*, void>, void*, int> try_recv;
    public delegate* unmanaged<ulong, delegate* unmanaged<void*, int, poc_message_view*, void>, delegate* unmanaged<void*, int, poc_message_view*, void>, void*, ulong*, int> recv;
    public delegate* unmanaged<ulong, ulong, int> cancel;
    public delegate* unmanaged<ulong, int> close;
    public delegate* unmanaged<ulong, int> release;
}

/// <summary>bridge.h <c>poc_future_vtable</c>: <c>poll(handle, wake, deliver, user)</c>,
/// <c>cancel</c>, <c>release</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct poc_future_vtable
{
    public uint abi_version;
    public uint size;
    public delegate* unmanaged<ulong, delegate* unmanaged<void*, void>, delegate* unmanaged<void*, int, poc_message_view*, void>, void*, int> poll;
    public delegate* unmanaged<ulong, int> cancel;
    public delegate* unmanaged<ulong, int> release;
}

/// <summary>bridge.h <c>poc_async_fn</c>: a function one runtime lends to another —
/// <c>call(context, arg, out)</c> starts a call, <c>release(context)</c> gives the function back.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct poc_async_fn
{
    public delegate* unmanaged<void*, poc_message_view*, poc_future*, int> call;
    public delegate* unmanaged<void*, void> release;
    public void* context;
}

/// <summary>bridge.h <c>poc_agent_report</c>: what an agent did.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct poc_agent_report
{
    public int status;
    public uint reserved;
    public ulong messages;
    public ulong checksum;
    public ulong order_errors;
}

/// <summary>The functions libpoc_native.so exports (bridge.h <c>POC_API</c>). Opaque runtime
/// pointers are <c>nint</c>; agent <c>done</c> functions are
/// <c>poc_agent_done_fn(void* user, const poc_agent_report*)</c>.</summary>
internal static unsafe partial class NativeMethods
{
    internal const string Library = "poc_native";

    /// <summary>The <c>POC_ABI_VERSION</c> these declarations were written for.</summary>
    internal const uint AbiVersion = 1;

    /// <summary>bridge.h <c>POC_DEFAULT_MAX_PAYLOAD</c> (16 MiB).</summary>
    internal const int DefaultMaxPayload = 16 * 1024 * 1024;

    // Section - Statuses and messages
    [LibraryImport(Library)] internal static partial byte* poc_status_str(int status);
    [LibraryImport(Library)] internal static partial uint poc_abi_version();
    [LibraryImport(Library)] internal static partial ulong poc_message_checksum(poc_message_view* msg);

    // Section - C++ runtime
    [LibraryImport(Library)] internal static partial int poc_cpp_runtime_new(uint threads, nint* @out);
    [LibraryImport(Library)] internal static partial int poc_cpp_runtime_shutdown(nint rt);
    [LibraryImport(Library)] internal static partial void poc_cpp_runtime_free(nint rt);
    [LibraryImport(Library)] internal static partial int poc_cpp_channel_new(nint rt, nuint capacity, poc_sender* tx, poc_receiver* rx);
    [LibraryImport(Library)] internal static partial int poc_cpp_channel_new_ex(nint rt, nuint capacity, nuint max_payload, poc_sender* tx, poc_receiver* rx);
    [LibraryImport(Library)] internal static partial int poc_cpp_producer_start(nint rt, poc_sender tx, ulong stream, ulong count, nuint payload_len, delegate* unmanaged<void*, poc_agent_report*, void> done, void* user, ulong* @out);
    [LibraryImport(Library)] internal static partial int poc_cpp_consumer_start(nint rt, poc_receiver rx, delegate* unmanaged<void*, poc_agent_report*, void> done, void* user, ulong* @out);
    [LibraryImport(Library)] internal static partial int poc_cpp_echo_start(nint rt, poc_receiver rx, poc_sender tx, delegate* unmanaged<void*, poc_agent_report*, void> done, void* user, ulong* @out);
    [LibraryImport(Library)] internal static partial int poc_cpp_timer_start(nint rt, poc_sender tx, uint interval_ms, ulong max_count, delegate* unmanaged<void*, poc_agent_report*, void> done, void* user, ulong* @out);
    [LibraryImport(Library)] internal static partial int poc_cpp_agent_cancel(nint rt, ulong agent);

    // Section - Async calls exported by C++
    [LibraryImport(Library)] internal static partial int poc_cpp_delayed_square(nint rt, ulong x, uint delay_ms, poc_future* @out);
    [LibraryImport(Library)] internal static partial int poc_cpp_square_fn(nint rt, uint mode, uint delay_ms, poc_async_fn* @out);
    [LibraryImport(Library)] internal static partial int poc_cpp_sum_calls(nint rt, poc_async_fn f, ulong first, uint count, poc_future* @out);

    // Section - Rust runtime
    [LibraryImport(Library)] internal static partial int poc_rust_runtime_new(uint worker_threads, nint* @out);
    [LibraryImport(Library)] internal static partial int poc_rust_runtime_shutdown(nint rt);
    [LibraryImport(Library)] internal static partial void poc_rust_runtime_free(nint rt);
    [LibraryImport(Library)] internal static partial int poc_rust_channel_new(nint rt, nuint capacity, poc_sender* tx, poc_receiver* rx);
    [LibraryImport(Library)] internal static partial int poc_rust_channel_new_ex(nint rt, nuint capacity, nuint max_payload, poc_sender* tx, poc_receiver* rx);
    [LibraryImport(Library)] internal static partial int poc_rust_producer_start(nint rt, poc_sender tx, ulong stream, ulong count, nuint payload_len, delegate* unmanaged<void*, poc_agent_report*, void> done, void* user, ulong* @out);
    [LibraryImport(Library)] internal static partial int poc_rust_consumer_start(nint rt, poc_receiver rx, delegate* unmanaged<void*, poc_agent_report*, void> done, void* user, ulong* @out);
    [LibraryImport(Library)] internal static partial int poc_rust_echo_start(nint rt, poc_receiver rx, poc_sender tx, delegate* unmanaged<void*, poc_agent_report*, void> done, void* user, ulong* @out);
    [LibraryImport(Library)] internal static partial int poc_rust_agent_cancel(nint rt, ulong agent);

    // Section - Async calls exported by Rust
    [LibraryImport(Library)] internal static partial int poc_rust_fetch_user(int id, poc_future* @out);
    [LibraryImport(Library)] internal static partial int poc_rust_load_config(byte* path, poc_future* @out);
    [LibraryImport(Library)] internal static partial int poc_rust_database_connect(byte* url, ulong* db);
    [LibraryImport(Library)] internal static partial int poc_rust_database_query(ulong db, byte* sql, poc_future* @out);
    [LibraryImport(Library)] internal static partial int poc_rust_database_insert(ulong db, byte* row, poc_future* @out);
    [LibraryImport(Library)] internal static partial int poc_rust_database_free(ulong db);
    [LibraryImport(Library)] internal static partial int poc_rust_sync_all(nint rt, uint steps, uint step_ms, poc_future* @out);
    [LibraryImport(Library)] internal static partial int poc_rust_sync_progress(ulong future, ulong* steps_done, uint* running);
    [LibraryImport(Library)] internal static partial int poc_rust_square_fn(nint rt, uint mode, uint delay_ms, poc_async_fn* @out);
    [LibraryImport(Library)] internal static partial int poc_rust_sum_calls(poc_async_fn f, ulong first, uint count, poc_future* @out);

    /// <summary>The static name of a status (bridge.h <c>poc_status_str</c>).</summary>
    internal static string StatusName(int status) =>
        Marshal.PtrToStringUTF8((nint)poc_status_str(status)) ?? "UNKNOWN";
}
