using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Dsl;

/// <summary>
/// One parsed <c>.mix</c> file with its syntax diagnostics. Immutable, so a caller that keeps it (the generator, per
/// file, across edits) can check it again with other files without parsing it again.
/// </summary>
public sealed class MixSyntaxTree
{
    MixSyntaxTree(MixFile file, IReadOnlyList<Diagnostic> diagnostics)
    {
        File = file;
        Diagnostics = diagnostics;
        Imports = file.Imports.Select(i => MixCompilation.ResolveImport(file.Source.Path, i.Path)).ToList();
    }

    /// <summary>The syntax.</summary>
    public MixFile File { get; }
    /// <summary>The text.</summary>
    public SourceText Source => File.Source;
    /// <summary>Syntax diagnostics.</summary>
    public IReadOnlyList<Diagnostic> Diagnostics { get; }
    /// <summary>The normalized paths this file imports, as the compilation resolves them.</summary>
    public IReadOnlyList<string> Imports { get; }

    /// <summary>Parses one file.</summary>
    public static MixSyntaxTree Parse(SourceText source)
    {
        var bag = new DiagnosticBag();
        var file = MixParser.Parse(source, bag);
        return new MixSyntaxTree(file, bag.Items.ToList());
    }
}
