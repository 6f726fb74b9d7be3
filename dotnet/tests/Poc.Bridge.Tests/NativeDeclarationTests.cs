// The declaration check: the hand-written C# declarations of bridge.h (Interop/NativeMethods.cs)
// must not drift from the header.
//
// Instead of generating the declarations with CppSharp (not on the package feed here) and diffing,
// this test reads bridge.h itself — its path is baked into the test assembly as the metadata
// "PocBridgeHeader" — with a small parser that understands exactly the C the header uses (defines,
// scalar and function-pointer typedefs, struct bodies, POC_API prototypes), maps every C type to a
// shape (i32/u32/u64/usize/…, pointer, function pointer with its own parameter shapes, struct by
// value with its natural-alignment size) and compares it with what reflection sees on the C# side:
// every POC_API function has a NativeMethods method of the same name, parameter count, parameter
// shapes and sizes and return shape (and vice versa); every status #define equals the Status value
// of the same name; POC_ABI_VERSION and POC_DEFAULT_MAX_PAYLOAD equal their C# constants; every
// struct with a body has a C# struct with the same field names in order, field shapes, offsets and
// size. A last test asks the loaded library itself (poc_abi_version, poc_status_str).
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Poc.Bridge.Interop;
using Xunit;

namespace Poc.Bridge.Tests;

public sealed partial class NativeDeclarationTests
{
    private static readonly Lazy<BridgeHeader> s_header = new(() => BridgeHeader.Load(HeaderPath()));

    private static BridgeHeader Header => s_header.Value;

    [Fact]
    public void Header_Parsed_FindsEveryPart()
    {
        // Guards the parser itself: if it silently found nothing, every other check would pass.
        Assert.True(Header.Functions.Count >= 20, $"only {Header.Functions.Count} POC_API functions parsed");
        Assert.True(Header.Structs.Count >= 8, $"only {Header.Structs.Count} struct bodies parsed");
        Assert.True(Header.Statuses.Count >= 10, $"only {Header.Statuses.Count} status defines parsed");
        Assert.Contains("poc_recv_complete_fn", Header.FunctionTypedefs.Keys);
    }

    [Fact]
    public void PocApiFunctions_ComparedWithNativeMethods_MatchOneToOne()
    {
        var methods = typeof(NativeMethods)
            .GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
            .Where(m => m.Name.StartsWith("poc_", StringComparison.Ordinal))
            .ToDictionary(m => m.Name);
        var errors = new List<string>();
        foreach (CFunction function in Header.Functions.Values)
        {
            if (!methods.TryGetValue(function.Name, out MethodInfo? method))
            {
                errors.Add($"{function.Name}: declared in bridge.h, missing from NativeMethods");
                continue;
            }
            ParameterInfo[] parameters = method.GetParameters();
            if (parameters.Length != function.Parameters.Count)
            {
                errors.Add($"{function.Name}: {function.Parameters.Count} parameters in bridge.h, {parameters.Length} in C#");
                continue;
            }
            Compare($"{function.Name} returns", function.Return, Shape.Of(method.ReturnType), errors);
            for (int i = 0; i < parameters.Length; i++)
                Compare($"{function.Name}({function.Parameters[i].Name})", function.Parameters[i].Shape,
                    Shape.Of(parameters[i].ParameterType), errors);
        }
        foreach (string name in methods.Keys.Where(n => !Header.Functions.ContainsKey(n)))
            errors.Add($"{name}: in NativeMethods, not a POC_API function of bridge.h");
        AssertNone(errors);
    }

    [Fact]
    public void StatusDefines_ComparedWithStatusEnum_MatchByNameAndValue()
    {
        var errors = new List<string>();
        var byName = Enum.GetValues<Status>().ToDictionary(s => s.ToString().ToUpperInvariant());
        foreach ((string name, long value) in Header.Statuses)
        {
            if (!byName.TryGetValue(name, out Status status)) errors.Add($"POC_{name} = {value}: no Status.{name}");
            else if ((long)status != value) errors.Add($"POC_{name} = {value}, Status.{status} = {(int)status}");
        }
        foreach (string name in byName.Keys.Where(n => !Header.Statuses.ContainsKey(n)))
            errors.Add($"Status.{byName[name]}: no POC_{name} in bridge.h");
        AssertNone(errors);
    }

    [Fact]
    public void Constants_ComparedWithHeader_Match()
    {
        // The header is the reference here: "expected" is what bridge.h says.
        long abiVersion = Header.EvaluateDefine("POC_ABI_VERSION");
        long maxPayload = Header.EvaluateDefine("POC_DEFAULT_MAX_PAYLOAD");
        Assert.True(abiVersion == NativeMethods.AbiVersion,
            $"POC_ABI_VERSION is {abiVersion} in bridge.h, NativeMethods.AbiVersion is {NativeMethods.AbiVersion}");
        Assert.True(maxPayload == NativeMethods.DefaultMaxPayload,
            $"POC_DEFAULT_MAX_PAYLOAD is {maxPayload} in bridge.h, NativeMethods.DefaultMaxPayload is {NativeMethods.DefaultMaxPayload}");
    }

    [Fact]
    public void SquareModeDefines_ComparedWithSquareModeEnum_MatchByNameAndValue()
    {
        // POC_SQUARE_<MODE> in bridge.h ↔ SquareMode.<Mode>, both ways.
        var modes = Enum.GetValues<SquareMode>().ToDictionary(m => m.ToString().ToUpperInvariant());
        var defines = Header.DefineNames.Where(n => n.StartsWith("POC_SQUARE_", StringComparison.Ordinal)).ToList();
        Assert.True(defines.Count >= 3, $"only {defines.Count} POC_SQUARE_* defines parsed");
        var errors = new List<string>();
        foreach (string define in defines)
        {
            long value = Header.EvaluateDefine(define);
            string name = define["POC_SQUARE_".Length..];
            if (!modes.TryGetValue(name, out SquareMode mode)) errors.Add($"{define} = {value}: no SquareMode.{name}");
            else if ((long)mode != value) errors.Add($"{define} = {value}, SquareMode.{mode} = {(int)mode}");
        }
        foreach (string name in modes.Keys.Where(n => !defines.Contains($"POC_SQUARE_{n}")))
            errors.Add($"SquareMode.{modes[name]}: no POC_SQUARE_{name} in bridge.h");
        AssertNone(errors);
    }

    [Theory]
    [InlineData(nameof(poc_message_view))]
    [InlineData(nameof(poc_sender))]
    [InlineData(nameof(poc_receiver))]
    [InlineData(nameof(poc_future))]
    [InlineData(nameof(poc_sender_vtable))]
    [InlineData(nameof(poc_receiver_vtable))]
    [InlineData(nameof(poc_future_vtable))]
    [InlineData(nameof(poc_async_fn))]
    [InlineData(nameof(poc_agent_report))]
    public void Struct_ComparedWithHeader_HasSameFieldsOffsetsAndSize(string name)
    {
        Assert.True(Header.Structs.TryGetValue(name, out CStruct? c), $"bridge.h has no struct body for {name}");
        Type type = InteropType(name) ?? throw new Xunit.Sdk.XunitException($"Poc.Bridge.Interop has no struct {name}");
        FieldInfo[] fields = type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
        var errors = new List<string>();
        string cFields = string.Join(", ", c.Fields.Select(f => f.Name));
        string csFields = string.Join(", ", fields.Select(f => f.Name));
        Assert.True(cFields == csFields, $"{name} fields differ: C [{cFields}], C# [{csFields}]");
        for (int i = 0; i < fields.Length; i++)
        {
            Compare($"{name}.{fields[i].Name}", c.Fields[i].Shape, Shape.Of(fields[i].FieldType), errors);
            long offset = Marshal.OffsetOf(type, fields[i].Name).ToInt64();
            if (offset != c.Fields[i].Offset) errors.Add($"{name}.{fields[i].Name}: offset {c.Fields[i].Offset} in C, {offset} in C#");
        }
        int size = SizeOf(type);
        if (size != c.Size) errors.Add($"{name}: sizeof {c.Size} in C, {size} in C#");
        AssertNone(errors);
    }

    [Fact]
    public void StructBodies_InHeader_AllDeclaredInCSharp()
    {
        var missing = Header.Structs.Keys.Where(n => InteropType(n) is null).ToList();
        Assert.Empty(missing);
    }

    [Fact]
    public unsafe void LoadedLibrary_AbiVersionAndStatusNames_MatchDeclarations()
    {
        Assert.Equal(NativeMethods.AbiVersion, NativeMethods.poc_abi_version());
        foreach (Status status in Enum.GetValues<Status>())
            Assert.Equal(status.ToString().ToUpperInvariant(), NativeMethods.StatusName((int)status));
        Assert.Equal("UNKNOWN", NativeMethods.StatusName(12345));
    }

    private static void Compare(string what, Shape c, Shape cs, List<string> errors)
    {
        if (c.Size != cs.Size) errors.Add($"{what}: size {c.Size} in C ({c}), {cs.Size} in C# ({cs})");
        else if (!c.Equals(cs)) errors.Add($"{what}: {c} in C, {cs} in C#");
    }

    private static void AssertNone(List<string> errors) =>
        Assert.True(errors.Count == 0, "C# declarations drifted from bridge.h:\n  " + string.Join("\n  ", errors));

    private static Type? InteropType(string name) => typeof(NativeMethods).Assembly.GetType($"Poc.Bridge.Interop.{name}");

    private static int SizeOf(Type type) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(type).Invoke(null, null)!;

    private static string HeaderPath()
    {
        string? path = typeof(NativeDeclarationTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .SingleOrDefault(a => a.Key == "PocBridgeHeader")?.Value;
        Assert.False(string.IsNullOrEmpty(path), "the test assembly has no PocBridgeHeader metadata");
        Assert.True(File.Exists(path), $"bridge.h not found at {path}");
        return path!;
    }

    /// <summary>What a type looks like at the ABI: a kind, a size, and for function pointers the
    /// shapes of the return and the parameters; for pointers to structs, the struct's name.</summary>
    private sealed record Shape(string Kind, int Size, Shape? Return = null, IReadOnlyList<Shape>? Parameters = null)
    {
        public static readonly Shape Void = new("void", 0);
        public static readonly Shape Pointer = new("ptr", 8);

        public bool Equals(Shape? other) =>
            other is not null && Kind == other.Kind && Size == other.Size && Equals(Return, other.Return) &&
            (Parameters ?? []).SequenceEqual(other.Parameters ?? []);

        public override int GetHashCode() => HashCode.Combine(Kind, Size);

        public override string ToString() => Parameters is null
            ? Kind
            : $"fn({string.Join(", ", Parameters)}) -> {Return}";

        /// <summary>The shape of a C# type as the declarations use it.</summary>
        public static Shape Of(Type type)
        {
            if (type.IsFunctionPointer)
                return new Shape("fn", 8, Of(type.GetFunctionPointerReturnType()),
                    type.GetFunctionPointerParameterTypes().Select(Of).ToList());
            if (type.IsPointer)
            {
                Type element = type.GetElementType()!;
                bool toStruct = element.IsValueType && !element.IsPrimitive && element.Namespace == typeof(poc_sender).Namespace;
                return toStruct ? new Shape($"ptr to {element.Name}", 8) : Pointer;
            }
            if (type == typeof(void)) return Void;
            if (type == typeof(nint)) return Pointer; // opaque runtime pointers (poc_cpp_runtime*)
            if (type == typeof(nuint)) return new Shape("usize", 8);
            if (type == typeof(int)) return new Shape("i32", 4);
            if (type == typeof(uint)) return new Shape("u32", 4);
            if (type == typeof(long)) return new Shape("i64", 8);
            if (type == typeof(ulong)) return new Shape("u64", 8);
            if (type == typeof(byte)) return new Shape("u8", 1);
            if (type.IsValueType) return new Shape($"struct {type.Name}", SizeOf(type));
            return new Shape($"managed {type.Name}", -1);
        }
    }

    private sealed record CParameter(string Name, Shape Shape);

    private sealed record CFunction(string Name, Shape Return, IReadOnlyList<CParameter> Parameters);

    private sealed record CField(string Name, Shape Shape, int Offset);

    private sealed record CStruct(string Name, IReadOnlyList<CField> Fields, int Size, int Align);

    /// <summary>The parts of bridge.h the check compares, parsed from the header text.</summary>
    private sealed partial class BridgeHeader
    {
        private static readonly Dictionary<string, Shape> s_scalars = new()
        {
            ["void"] = Shape.Void,
            ["int32_t"] = new("i32", 4),
            ["uint32_t"] = new("u32", 4),
            ["int64_t"] = new("i64", 8),
            ["uint64_t"] = new("u64", 8),
            ["size_t"] = new("usize", 8),
            ["uint8_t"] = new("u8", 1),
            ["char"] = new("u8", 1),
        };

        private readonly Dictionary<string, string> _defines = new();
        private readonly Dictionary<string, string> _aliases = new();  // typedef uint64_t poc_op_id;
        private readonly HashSet<string> _structNames = new();          // structs with a body (others are opaque)

        public Dictionary<string, CFunction> Functions { get; } = new();
        public Dictionary<string, CStruct> Structs { get; } = new();
        public Dictionary<string, Shape> FunctionTypedefs { get; } = new();
        public Dictionary<string, long> Statuses { get; } = new();

        public IEnumerable<string> DefineNames => _defines.Keys;

        public static BridgeHeader Load(string path)
        {
            var header = new BridgeHeader();
            header.Parse(File.ReadAllText(path));
            return header;
        }

        public long EvaluateDefine(string name)
        {
            Assert.True(_defines.TryGetValue(name, out string? text), $"bridge.h has no #define {name}");
            // Casts to the integer types and the u suffix do not change the value here.
            string expression = CastRegex().Replace(text!, "");
            expression = SuffixRegex().Replace(expression, "$1");
            return new ExpressionParser(expression).Parse();
        }

        private void Parse(string text)
        {
            text = BlockCommentRegex().Replace(text, " ");
            text = LineCommentRegex().Replace(text, " ");
            foreach (Match m in DefineRegex().Matches(text)) _defines[m.Groups[1].Value] = m.Groups[2].Value.Trim();
            foreach ((string name, string value) in _defines)
            {
                if (!name.StartsWith("POC_", StringComparison.Ordinal) || name is "POC_ABI_VERSION") continue;
                if (long.TryParse(value, out long status)) Statuses[name["POC_".Length..]] = status;
            }
            string code = PreprocessorRegex().Replace(text, " ");
            foreach (Match m in AliasRegex().Matches(code)) _aliases[m.Groups[2].Value] = m.Groups[1].Value;
            foreach (Match m in StructRegex().Matches(code)) _structNames.Add(m.Groups["name"].Value);
            // Declarations in the order of the header: a struct body or a function type uses only
            // what was declared before it (pointers to structs are known by name from the line above).
            var declarations = StructRegex().Matches(code).Select(m => (m.Index, Kind: 's', Match: m))
                .Concat(FunctionTypedefRegex().Matches(code).Select(m => (m.Index, Kind: 't', Match: m)))
                .Concat(FunctionRegex().Matches(code).Select(m => (m.Index, Kind: 'f', Match: m)))
                .OrderBy(d => d.Index);
            foreach ((_, char kind, Match m) in declarations)
            {
                string name = m.Groups["name"].Value;
                switch (kind)
                {
                    case 's':
                        ParseStruct(name, m.Groups["body"].Value);
                        break;
                    case 't':
                        FunctionTypedefs[name] = FunctionShape(m.Groups["ret"].Value, m.Groups["params"].Value);
                        break;
                    default:
                        Functions[name] = new CFunction(name, TypeShape(m.Groups["ret"].Value), ParseParameters(m.Groups["params"].Value));
                        break;
                }
            }
        }

        private void ParseStruct(string name, string body)
        {
            var fields = new List<CField>();
            int offset = 0, align = 1;
            foreach (string declaration in body.Split(';').Select(d => d.Trim()).Where(d => d.Length > 0))
            {
                Match fn = FieldFunctionRegex().Match(declaration);
                (string fieldName, Shape shape) = fn.Success
                    ? (fn.Groups["name"].Value, FunctionShape(fn.Groups["ret"].Value, fn.Groups["params"].Value))
                    : SplitDeclaration(declaration);
                int fieldAlign = Math.Max(1, AlignOf(shape));
                offset = (offset + fieldAlign - 1) / fieldAlign * fieldAlign;
                fields.Add(new CField(fieldName, shape, offset));
                offset += shape.Size;
                align = Math.Max(align, fieldAlign);
            }
            int size = (offset + align - 1) / align * align;
            Structs[name] = new CStruct(name, fields, size, align);
        }

        private int AlignOf(Shape shape) =>
            shape.Kind.StartsWith("struct ", StringComparison.Ordinal) ? Structs[shape.Kind["struct ".Length..]].Align : shape.Size;

        private Shape FunctionShape(string ret, string parameters) =>
            new("fn", 8, TypeShape(ret), ParseParameters(parameters).Select(p => p.Shape).ToList());

        private List<CParameter> ParseParameters(string text)
        {
            text = text.Trim();
            if (text is "" or "void") return [];
            return text.Split(',').Select(p => SplitDeclaration(p.Trim())).Select(d => new CParameter(d.Name, d.Shape)).ToList();
        }

        /// <summary>"const poc_message_view* msg" → ("msg", ptr to poc_message_view).</summary>
        private (string Name, Shape Shape) SplitDeclaration(string declaration)
        {
            Match m = DeclarationRegex().Match(declaration);
            Assert.True(m.Success, $"cannot parse the declaration '{declaration}' of bridge.h");
            return (m.Groups["name"].Value, TypeShape(m.Groups["type"].Value));
        }

        private Shape TypeShape(string type)
        {
            string text = ConstRegex().Replace(type, " ").Trim();
            int stars = text.Count(c => c == '*');
            string name = text.Replace("*", "").Trim();
            if (stars > 0)
            {
                bool toStruct = stars == 1 && _structNames.Contains(name);
                return toStruct ? new Shape($"ptr to {name}", 8) : Shape.Pointer;
            }
            while (_aliases.TryGetValue(name, out string? target)) name = target;
            if (s_scalars.TryGetValue(name, out Shape? scalar)) return scalar;
            if (FunctionTypedefs.TryGetValue(name, out Shape? function)) return function;
            if (Structs.TryGetValue(name, out CStruct? s)) return new Shape($"struct {name}", s.Size);
            throw new Xunit.Sdk.XunitException($"bridge.h uses a type the declaration check does not know: '{type}'");
        }

        /// <summary>Integer constant expressions: numbers, + - * / &lt;&lt; and parentheses.</summary>
        private sealed class ExpressionParser(string text)
        {
            private int _pos;

            public long Parse()
            {
                long value = Sum();
                Skip();
                Assert.True(_pos == text.Length, $"cannot evaluate '{text}'");
                return value;
            }

            private long Sum()
            {
                long value = Product();
                while (true)
                {
                    if (Eat("<<")) value <<= (int)Product();
                    else if (Eat("+")) value += Product();
                    else if (Eat("-")) value -= Product();
                    else return value;
                }
            }

            private long Product()
            {
                long value = Atom();
                while (true)
                {
                    if (Eat("*")) value *= Atom();
                    else if (Eat("/")) value /= Atom();
                    else return value;
                }
            }

            private long Atom()
            {
                if (Eat("("))
                {
                    long value = Sum();
                    Assert.True(Eat(")"), $"unbalanced parentheses in '{text}'");
                    return value;
                }
                Skip();
                int start = _pos;
                while (_pos < text.Length && char.IsDigit(text[_pos])) _pos++;
                Assert.True(_pos > start, $"cannot evaluate '{text}'");
                return long.Parse(text[start.._pos]);
            }

            private bool Eat(string token)
            {
                Skip();
                if (string.CompareOrdinal(text, _pos, token, 0, token.Length) != 0) return false;
                _pos += token.Length;
                return true;
            }

            private void Skip()
            {
                while (_pos < text.Length && char.IsWhiteSpace(text[_pos])) _pos++;
            }
        }

        [GeneratedRegex(@"/\*.*?\*/", RegexOptions.Singleline)]
        private static partial Regex BlockCommentRegex();

        [GeneratedRegex(@"//[^\n]*")]
        private static partial Regex LineCommentRegex();

        [GeneratedRegex(@"^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+([^\n]+)$", RegexOptions.Multiline)]
        private static partial Regex DefineRegex();

        [GeneratedRegex(@"^[ \t]*#[^\n]*$", RegexOptions.Multiline)]
        private static partial Regex PreprocessorRegex();

        [GeneratedRegex(@"\btypedef\s+(\w+)\s+(\w+)\s*;")]
        private static partial Regex AliasRegex();

        [GeneratedRegex(@"\bstruct\s+(?<name>\w+)\s*\{(?<body>[^{}]*)\}")]
        private static partial Regex StructRegex();

        [GeneratedRegex(@"\btypedef\s+(?<ret>[\w\s\*]+?)\s*\(\s*\*\s*(?<name>\w+)\s*\)\s*\((?<params>[^)]*)\)\s*;")]
        private static partial Regex FunctionTypedefRegex();

        [GeneratedRegex(@"\bPOC_API\s+(?<ret>[\w\s\*]+?)\s*\b(?<name>poc_\w+)\s*\((?<params>[^)]*)\)\s*;")]
        private static partial Regex FunctionRegex();

        [GeneratedRegex(@"^(?<ret>[\w\s\*]+?)\s*\(\s*\*\s*(?<name>\w+)\s*\)\s*\((?<params>[^)]*)\)$", RegexOptions.Singleline)]
        private static partial Regex FieldFunctionRegex();

        [GeneratedRegex(@"^(?<type>[\w\s\*]*?[\w\*])\s*\b(?<name>\w+)$", RegexOptions.Singleline)]
        private static partial Regex DeclarationRegex();

        [GeneratedRegex(@"\b(const|struct)\b")]
        private static partial Regex ConstRegex();

        [GeneratedRegex(@"\(\s*(size_t|u?int(8|16|32|64)_t)\s*\)")]
        private static partial Regex CastRegex();

        [GeneratedRegex(@"\b(\d+)[uUlL]+\b")]
        private static partial Regex SuffixRegex();
    }
}
