using Xunit.Abstractions;

namespace Poc.Bridge.Tests;

/// <summary>The import conformance set over channels owned by the C++ (Asio) runtime.</summary>
public sealed class ImportCppTests(ITestOutputHelper output) : ImportConformanceTests(output)
{
    protected override IBridgeRuntime CreateOwner() => new CppRuntime(threads: 2);
}
