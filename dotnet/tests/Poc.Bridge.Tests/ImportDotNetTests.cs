using Xunit.Abstractions;

namespace Poc.Bridge.Tests;

/// <summary>The import conformance set over channels owned by the .NET runtime itself: the .NET
/// exporter (Export/) seen through the .NET importer, with .NET agents at the other end.</summary>
public sealed class ImportDotNetTests(ITestOutputHelper output) : ImportConformanceTests(output)
{
    protected override IBridgeRuntime CreateOwner() => new DotNetRuntime();
}
