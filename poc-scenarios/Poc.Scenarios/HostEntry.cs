// HostEntry — the entry point of the scenario runner when another runtime owns main.
//
// poc-host-cpp (poc-scenarios/host/dotnet_host.cpp) and poc-host-rust
// (poc-scenarios/rust/src/scenarios/dotnet_host.rs) start .NET in their own process through
// nethost/hostfxr, load this assembly with load_assembly_and_get_function_pointer and call
// HostEntry.Run through a plain C function pointer ([UnmanagedCallersOnly]). Run does what Main
// does (Runner.MainAsync) with the host's command line and returns the exit code, so the same
// scenario runs whichever runtime owns main.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Poc.Scenarios;

/// <summary>The runner's C-callable entry point for native hosts (C++, Rust) that load .NET.</summary>
public static class HostEntry
{
    /// <summary>Exit code when the runner could not run at all (an exception escaped it, or the
    /// arguments could not be decoded). 0, 1 and 2 keep the runner's meanings.</summary>
    public const int InternalError = 1;

    /// <summary>
    /// Runs the scenario runner with the host's arguments and returns its exit code
    /// (0: every invariant held, 1: one broke, 2: bad arguments).
    /// </summary>
    /// <param name="utf8Args">The arguments (without the program name) as UTF-8, each one followed
    /// by a NUL byte: "async-calls\0--messages\010\0". An empty argument is a lone NUL. May be
    /// null when <paramref name="length"/> is 0.</param>
    /// <param name="length">Bytes in <paramref name="utf8Args"/>, the last NUL included.</param>
    /// <param name="hostNameUtf8">NUL-terminated UTF-8 name of the runtime that owns main, printed
    /// by the runner ("host: C++ (hostfxr)"); null keeps ".NET".</param>
    /// <remarks>Never throws: the caller is native code, and an exception cannot cross into it.</remarks>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static unsafe int Run(byte* utf8Args, int length, byte* hostNameUtf8)
    {
        try
        {
            string[] args = DecodeArgs(utf8Args, length);
            if (hostNameUtf8 != null)
            {
                string? name = Marshal.PtrToStringUTF8((nint)hostNameUtf8);
                if (!string.IsNullOrEmpty(name)) Runner.HostName = name;
            }
            // The same path as Program.cs (Main); blocking is fine: this is the host's own thread.
            return Runner.MainAsync(args).GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            try
            {
                Console.Out.Flush();
                Console.Error.WriteLine($"Poc.Scenarios (hosted): the runner failed: {e}");
            }
            catch
            {
                // Nothing more can be reported; still return a code rather than throw.
            }
            return InternalError;
        }
    }

    /// <summary>Splits the NUL-terminated UTF-8 arguments.</summary>
    internal static unsafe string[] DecodeArgs(byte* utf8Args, int length)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "negative length");
        if (length == 0) return [];
        if (utf8Args == null) throw new ArgumentNullException(nameof(utf8Args));
        var bytes = new ReadOnlySpan<byte>(utf8Args, length);
        if (bytes[^1] != 0) throw new ArgumentException("the arguments must end with a NUL byte", nameof(utf8Args));
        var args = new List<string>();
        while (!bytes.IsEmpty)
        {
            int end = bytes.IndexOf((byte)0);
            args.Add(Encoding.UTF8.GetString(bytes[..end]));
            bytes = bytes[(end + 1)..];
        }
        return [.. args];
    }
}
