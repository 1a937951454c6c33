namespace Mix.Generator;

// The spec model between parsing and emitting: plain records of strings, ints and equatable arrays. No Roslyn
// types, no spans or offsets (a whitespace edit leaves a spec equal); .mix line numbers only for #line.

/// <summary>One .mix file as the generator sees it.</summary>
public sealed record MixInput(string Path, string Text, string? Namespace = null);

/// <summary>Settings read from MSBuild properties.</summary>
public sealed record GeneratorSettings(string Namespace, string ProjectDir, bool FusedDefault);

/// <summary>What is generated for one .mix file.</summary>
public sealed record FileSpec(
    string HintName,
    string MixPath,
    string Namespace,
    bool Skipped,
    EquatableArray<ClassSpec> Classes,
    EquatableArray<GenDiagnostic> Diagnostics);

/// <summary>One generated module class; <see cref="Kernel"/> is the fused kernel a standard-library mixer declares
/// (<c>@kernel("sepconv")</c>), implemented as <c>IKernelEquivalent</c>.</summary>
public sealed record ClassSpec(
    string Name,
    string MixName,
    string Kind,
    EquatableArray<string> Doc,
    EquatableArray<InputSpec> Inputs,
    EquatableArray<OptionSpec> Options,
    EquatableArray<FieldSpec> Fields,
    EquatableArray<CodeLine> Constructor,
    EquatableArray<CodeLine> Forward,
    bool IsAlias,
    string? AliasType,
    string OutputDoc,
    string? Kernel = null)
{
    /// <summary><c>@tied</c> weights, shared after the layers are registered: one <c>MixWeights.Tie</c> line each.</summary>
    public EquatableArray<CodeLine> Ties { get; init; } = EquatableArray<CodeLine>.Empty;
    /// <summary>Decoding states (<c>name = state(shape)</c>), listed by the <c>IStatefulMixer</c> implementation.</summary>
    public EquatableArray<StateSpec> States { get; init; } = EquatableArray<StateSpec>.Empty;
    /// <summary>C# of whether an instance calls <c>causal_attention</c> (<c>IStatefulMixer.HasKeyValues</c>), or null.</summary>
    public string? KeyValues { get; init; }
    /// <summary>Fused regions of the forward (<c>fusedK.Run(...)</c> lines): a field each, bound in the constructor.</summary>
    public EquatableArray<RegionSpec> Regions { get; init; } = EquatableArray<RegionSpec>.Empty;
}

/// <summary>A declared decoding state: its .mix name, C# of its sizes after the batch axis (options only), its dtype.</summary>
public sealed record StateSpec(string Name, EquatableArray<string> Sizes, string DType);

/// <summary>A forward input.</summary>
public sealed record InputSpec(string Name, string Doc);

/// <summary>A property of the Options record: one .mix parameter.</summary>
public sealed record OptionSpec(string Name, string MixName, string Type, string? Default, bool Required, string Doc);

/// <summary>
/// A layer field: name, state-dict key, type. A dotted key (<c>@key("a.b")</c>) is registered as nested modules
/// after <c>RegisterComponents</c>; until then the constructor holds the layer in <see cref="Local"/>.
/// </summary>
/// <see cref="NonPersistent"/>: a buffer outside the state dict (<c>buffer(..., persistent = false)</c>), registered the same way.
public sealed record FieldSpec(string Name, string Key, string Type, string Doc, string? Local = null, bool NonPersistent = false);

/// <summary>A line of emitted code, mapped to a .mix line (1-based) or 0 for glue.</summary>
public sealed record CodeLine(int Line, string Code);

/// <summary>A C# class bound to a .mix model by <c>[MixModel("file.mix", "name")]</c>; where the attribute is, as numbers.</summary>
public sealed record ModelBinding(
    string ClassName,
    string Namespace,
    string Accessibility,
    string MixPath,
    string ModelName,
    string? Problem,
    string FilePath,
    int SpanStart,
    int SpanLength,
    int StartLine,
    int StartColumn,
    int EndLine,
    int EndColumn);

/// <summary>
/// A C# token mixer declared with <c>[Mixer("name", "parameters", "signature")]</c>: usable from .mix like a built-in
/// mixer; generated code builds it with <c>new Type(dim, name: value, ...)</c>.
/// </summary>
public sealed record MixerBinding(string Name, string Parameters, string Signature, string TypeName);

/// <summary>A diagnostic at a span of a .mix file: the front end's (MIX0xxx) or the generator's (MIX9001). <see cref="Path"/>
/// is the file it lies in when that is not the file whose spec carries it (an error in an imported definition).</summary>
public sealed record GenDiagnostic(string Id, string Message, int SpanStart, int SpanLength, int StartLine, int StartColumn, int EndLine, int EndColumn,
    string? Path = null);
