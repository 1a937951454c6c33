namespace Mix.Generator;

// The spec model of C# attributes ([Mixer], [MetaFormerModel], [MetaFormerStage]): plain records, like Specs.cs. A
// place in a C# file is held as numbers (SourceSpot), never as a Roslyn Location; the records that hold places are
// kept apart from the ones the front end works on, so moving an attribute reruns reporting, not checking.

/// <summary>A place in a C# file, as numbers: path, span, 0-based line/column of both ends.</summary>
public sealed record SourceSpot(string Path, int Start, int Length, int StartLine, int StartColumn, int EndLine, int EndColumn);

/// <summary>A problem with an attribute, at a place in C#. <see cref="Id"/> is a generator ID (MIX91xx).</summary>
public sealed record AttributeProblem(string Id, string Message, SourceSpot Where);

/// <summary>
/// A <c>[Mixer]</c> class as read: the declaration handed to the front end (null when the arguments are unusable, the
/// name is a built-in's or its parameters or contract do not check), its name and problems, and where its name argument is (the attribute when that is not in source).
/// </summary>
public sealed record MixerDeclaration(string Name, string TypeName, MixerBinding? Binding, SourceSpot Where, EquatableArray<AttributeProblem> Problems);

/// <summary>
/// An attribute argument the synthesized .mix text was built from. <see cref="Verbatim"/>: <see cref="Where"/> covers the
/// contents of a plain string literal, so an offset into the value is the same offset into the C# text.
/// </summary>
public sealed record ArgumentSpot(SourceSpot Where, bool Verbatim);

/// <summary>
/// A piece of the synthesized .mix text that came from an attribute argument (<see cref="Spot"/> indexes
/// <see cref="MetaFormerDeclaration.Spots"/>). <see cref="Kind"/>: <c>mixer</c>, <c>norm</c>, <c>act</c> (a name the
/// generator checks before the front end runs), <c>value</c>, or <c>check</c> (generated text that checks a stage, whose
/// problems belong to the whole argument or attribute: no offsets map into it).
/// </summary>
public sealed record TextOrigin(int Start, int Length, int Spot, string Kind);

/// <summary>
/// A <c>[MetaFormerModel]</c> class as .mix: a model that aliases <c>metaformer</c> of the built-in copy of
/// models/metaformer.mix. <see cref="MixText"/> is null when the attributes themselves are unusable.
/// </summary>
public sealed record MetaFormerModel(string ClassName, string Namespace, string Accessibility, string MixName, string? MixText, EquatableArray<TextOrigin> Origins)
{
    /// <summary>Namespace-qualified class name (the key between a declaration and its build).</summary>
    public string FullName => Namespace.Length > 0 ? Namespace + "." + ClassName : ClassName;
}

/// <summary>
/// A <c>[MetaFormerModel]</c> class as read from C#: the model, the places of its attribute (<c>Spots[0]</c>) and of
/// the arguments the text came from, and the problems found in the attributes alone.
/// </summary>
public sealed record MetaFormerDeclaration(MetaFormerModel Model, EquatableArray<ArgumentSpot> Spots, EquatableArray<AttributeProblem> Problems);

/// <summary>
/// A problem found in the synthesized .mix text (a front-end diagnostic, MIX0xxx, or a generator one), at a span of
/// that text; <see cref="InLibrary"/>: found inside metaformer.mix itself, so only the model attribute can be blamed.
/// </summary>
public sealed record SynthesizedProblem(string Id, string Message, int Start, int Length, bool InLibrary);

/// <summary>What a <see cref="MetaFormerModel"/> builds to: the class (null when it does not check) and the problems.</summary>
public sealed record MetaFormerBuild(string FullName, string Namespace, string Accessibility, ClassSpec? Class, EquatableArray<SynthesizedProblem> Problems);
