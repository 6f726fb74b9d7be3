using Poc.Bridge.Interop;

namespace Poc.Bridge.Native;

/// <summary>
/// The exports of one native runtime (bridge.h sections "C++ runtime" and "Rust runtime" have the
/// same shape), as a table of function pointers to the <see cref="NativeMethods"/> declarations, so
/// that <see cref="NativeRuntime"/> is written once for both.
/// </summary>
internal sealed unsafe class NativeRuntimeApi
{
    /// <summary>poc_cpp_*: the Asio io_context runtime.</summary>
    internal static readonly NativeRuntimeApi Cpp = new("C++")
    {
        RuntimeNew = &NativeMethods.poc_cpp_runtime_new,
        RuntimeShutdown = &NativeMethods.poc_cpp_runtime_shutdown,
        RuntimeFree = &NativeMethods.poc_cpp_runtime_free,
        ChannelNew = &NativeMethods.poc_cpp_channel_new_ex,
        ProducerStart = &NativeMethods.poc_cpp_producer_start,
        ConsumerStart = &NativeMethods.poc_cpp_consumer_start,
        EchoStart = &NativeMethods.poc_cpp_echo_start,
        AgentCancel = &NativeMethods.poc_cpp_agent_cancel,
    };

    /// <summary>poc_rust_*: the tokio runtime.</summary>
    internal static readonly NativeRuntimeApi Rust = new("Rust")
    {
        RuntimeNew = &NativeMethods.poc_rust_runtime_new,
        RuntimeShutdown = &NativeMethods.poc_rust_runtime_shutdown,
        RuntimeFree = &NativeMethods.poc_rust_runtime_free,
        ChannelNew = &NativeMethods.poc_rust_channel_new_ex,
        ProducerStart = &NativeMethods.poc_rust_producer_start,
        ConsumerStart = &NativeMethods.poc_rust_consumer_start,
        EchoStart = &NativeMethods.poc_rust_echo_start,
        AgentCancel = &NativeMethods.poc_rust_agent_cancel,
    };

    private NativeRuntimeApi(string name) => Name = name;

    /// <summary>"C++" or "Rust".</summary>
    internal string Name { get; }

    internal delegate*<uint, nint*, int> RuntimeNew { get; private init; }
    internal delegate*<nint, int> RuntimeShutdown { get; private init; }
    internal delegate*<nint, void> RuntimeFree { get; private init; }
    internal delegate*<nint, nuint, nuint, poc_sender*, poc_receiver*, int> ChannelNew { get; private init; }
    internal delegate*<nint, poc_sender, ulong, ulong, nuint, delegate* unmanaged<void*, poc_agent_report*, void>, void*, ulong*, int> ProducerStart { get; private init; }
    internal delegate*<nint, poc_receiver, delegate* unmanaged<void*, poc_agent_report*, void>, void*, ulong*, int> ConsumerStart { get; private init; }
    internal delegate*<nint, poc_receiver, poc_sender, delegate* unmanaged<void*, poc_agent_report*, void>, void*, ulong*, int> EchoStart { get; private init; }
    internal delegate*<nint, ulong, int> AgentCancel { get; private init; }
}
