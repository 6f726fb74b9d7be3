using Xunit.Abstractions;

namespace Poc.Bridge.Tests;

/// <summary>The import conformance set over channels owned by the Rust (tokio) runtime.</summary>
public sealed class ImportRustTests(ITestOutputHelper output) : ImportConformanceTests(output)
{
    protected override IBridgeRuntime CreateOwner() => new RustRuntime(threads: 2);
}
