using System;
using System.Collections.Immutable;
using Mix.Dsl;

namespace Mix.Generator;

/// <summary>A .mix file and its syntax tree, parsed once per edit of that file.</summary>
public sealed record ParsedMix(MixInput Input, MixSyntaxTree Tree);

/// <summary>
/// What checking one .mix file needs: the file and every file it imports, directly or not (sorted by path). Equal
/// when those texts are equal, so that an edit elsewhere leaves this file's check cached; the parsed trees ride along
/// and take no part in equality.
/// </summary>
public sealed class CheckUnit : IEquatable<CheckUnit>
{
    internal CheckUnit(MixInput input, EquatableArray<MixInput> closure, ImmutableArray<MixSyntaxTree> trees)
    {
        Input = input;
        Closure = closure;
        Trees = trees;
    }

    /// <summary>The file to check.</summary>
    public MixInput Input { get; }
    /// <summary>The file and its imports, sorted by path.</summary>
    public EquatableArray<MixInput> Closure { get; }
    /// <summary>Their syntax trees, in the same order.</summary>
    public ImmutableArray<MixSyntaxTree> Trees { get; }

    /// <inheritdoc />
    public bool Equals(CheckUnit? other) => other is not null && Input.Equals(other.Input) && Closure.Equals(other.Closure);
    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as CheckUnit);
    /// <inheritdoc />
    public override int GetHashCode() => Input.GetHashCode() * 31 + Closure.GetHashCode();
}

/// <summary>
/// One file checked with its imports: every diagnostic the check found (in this file or in an import, as the check saw
/// them), and the file's classes unless an error lies in the file or in an imported definition it uses.
/// <see cref="Uses"/> (the files of the imported definitions it uses) lets the last step skip a file that needs classes
/// of a file that is not generated.
/// </summary>
public sealed record UnitSpec(
    string MixPath,
    string? Namespace,
    EquatableArray<string> Uses,
    bool HasErrors,
    EquatableArray<ClassSpec> Classes,
    EquatableArray<GenDiagnostic> Diagnostics);
