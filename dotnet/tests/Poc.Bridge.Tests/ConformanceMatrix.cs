using Xunit;
using Xunit.Abstractions;
using static Poc.Bridge.Tests.RuntimeKind;

namespace Poc.Bridge.Tests;

// The cross-runtime conformance matrix: every producer runtime × channel-owner runtime × consumer
// runtime (3 × 3 × 3 = 27), one sealed subclass of ConformanceTestBase each. The class name says the
// combination (the base checks it against the arguments), so `dotnet test --list-tests` and every
// failure show which one ran. Run only the matrix with
//   dotnet test Poc.sln --filter "FullyQualifiedName~Poc.Bridge.Tests.Conformance_"
// and one runtime's share of it with, e.g., --filter "FullyQualifiedName~RustChannel".

public sealed class Conformance_CppProducer_CppChannel_CppConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Cpp, Cpp, Cpp);
public sealed class Conformance_CppProducer_CppChannel_RustConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Cpp, Cpp, Rust);
public sealed class Conformance_CppProducer_CppChannel_DotNetConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Cpp, Cpp, DotNet);
public sealed class Conformance_CppProducer_RustChannel_CppConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Cpp, Rust, Cpp);
public sealed class Conformance_CppProducer_RustChannel_RustConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Cpp, Rust, Rust);
public sealed class Conformance_CppProducer_RustChannel_DotNetConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Cpp, Rust, DotNet);
public sealed class Conformance_CppProducer_DotNetChannel_CppConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Cpp, DotNet, Cpp);
public sealed class Conformance_CppProducer_DotNetChannel_RustConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Cpp, DotNet, Rust);
public sealed class Conformance_CppProducer_DotNetChannel_DotNetConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Cpp, DotNet, DotNet);
public sealed class Conformance_RustProducer_CppChannel_CppConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Rust, Cpp, Cpp);
public sealed class Conformance_RustProducer_CppChannel_RustConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Rust, Cpp, Rust);
public sealed class Conformance_RustProducer_CppChannel_DotNetConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Rust, Cpp, DotNet);
public sealed class Conformance_RustProducer_RustChannel_CppConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Rust, Rust, Cpp);
public sealed class Conformance_RustProducer_RustChannel_RustConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Rust, Rust, Rust);
public sealed class Conformance_RustProducer_RustChannel_DotNetConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Rust, Rust, DotNet);
public sealed class Conformance_RustProducer_DotNetChannel_CppConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Rust, DotNet, Cpp);
public sealed class Conformance_RustProducer_DotNetChannel_RustConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Rust, DotNet, Rust);
public sealed class Conformance_RustProducer_DotNetChannel_DotNetConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, Rust, DotNet, DotNet);
public sealed class Conformance_DotNetProducer_CppChannel_CppConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, DotNet, Cpp, Cpp);
public sealed class Conformance_DotNetProducer_CppChannel_RustConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, DotNet, Cpp, Rust);
public sealed class Conformance_DotNetProducer_CppChannel_DotNetConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, DotNet, Cpp, DotNet);
public sealed class Conformance_DotNetProducer_RustChannel_CppConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, DotNet, Rust, Cpp);
public sealed class Conformance_DotNetProducer_RustChannel_RustConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, DotNet, Rust, Rust);
public sealed class Conformance_DotNetProducer_RustChannel_DotNetConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, DotNet, Rust, DotNet);
public sealed class Conformance_DotNetProducer_DotNetChannel_CppConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, DotNet, DotNet, Cpp);
public sealed class Conformance_DotNetProducer_DotNetChannel_RustConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, DotNet, DotNet, Rust);
public sealed class Conformance_DotNetProducer_DotNetChannel_DotNetConsumer(BridgeRuntimesFixture r, ITestOutputHelper o) : ConformanceTestBase(r, o, DotNet, DotNet, DotNet);

/// <summary>The matrix is complete: one case class per combination, no more.</summary>
public sealed class ConformanceMatrixTests
{
    [Fact]
    public void Matrix_EveryCombination_HasExactlyOneCaseClass()
    {
        string[] expected = (from p in Enum.GetValues<RuntimeKind>()
                             from o in Enum.GetValues<RuntimeKind>()
                             from c in Enum.GetValues<RuntimeKind>()
                             select ConformanceTestBase.ClassNameOf(p, o, c)).Order().ToArray();
        string[] actual = typeof(ConformanceTestBase).Assembly.GetTypes()
            .Where(t => t.IsSubclassOf(typeof(ConformanceTestBase)))
            .Select(t => t.Name).Order().ToArray();
        Assert.Equal(27, expected.Length);
        Assert.Equal(expected, actual);
        Assert.All(typeof(ConformanceTestBase).Assembly.GetTypes().Where(t => t.IsSubclassOf(typeof(ConformanceTestBase))),
            t => Assert.True(t.IsSealed && t.IsPublic, $"{t.Name} must be public and sealed"));
    }
}
