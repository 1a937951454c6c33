using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;
using Mix.Dsl;
using Mix.Dsl.Diagnostics;

namespace Mix.Generator;

/// <summary>
/// Reports the front end's diagnostics on <c>.mix</c> files (AdditionalFiles) at their exact spans, so they show in
/// the IDE and the build like C# errors. The generator only skips invalid files and never reports these again.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class MixAnalyzer : DiagnosticAnalyzer
{
    static readonly ImmutableDictionary<string, Microsoft.CodeAnalysis.DiagnosticDescriptor> s_descriptors =
        DiagnosticIds.All.ToImmutableDictionary(d => d.Id, Convert);

    static Microsoft.CodeAnalysis.DiagnosticDescriptor Convert(Mix.Dsl.Diagnostics.DiagnosticDescriptor d) => new(
        d.Id, d.Title, "{0}", "Mix." + d.Category,
        d.Severity switch { Severity.Error => DiagnosticSeverity.Error, Severity.Warning => DiagnosticSeverity.Warning, _ => DiagnosticSeverity.Info },
        isEnabledByDefault: true, helpLinkUri: "docs/language.md" + d.HelpAnchor);

    /// <inheritdoc />
    public override ImmutableArray<Microsoft.CodeAnalysis.DiagnosticDescriptor> SupportedDiagnostics { get; } =
        s_descriptors.Values.OrderBy(d => d.Id, StringComparer.Ordinal).ToImmutableArray();

    /// <summary>The descriptor of a front-end ID.</summary>
    public static Microsoft.CodeAnalysis.DiagnosticDescriptor DescriptorFor(string id) => s_descriptors[id];

    /// <inheritdoc />
    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            // In path order, like the generator: the host's order of AdditionalFiles is not stable, and the file an
            // import cycle is reported in must not change from one build to the next.
            var files = start.Options.AdditionalFiles.Where(IsMix).OrderBy(f => f.Path, StringComparer.Ordinal).ToList();
            if (files.Count == 0) return;
            var compilation = new Lazy<MixCompilation>(() => SpecBuilder.Compile(
                files.Select(f => new MixInput(f.Path, f.GetText(start.CancellationToken)?.ToString() ?? "")),
                Mixers(start.Compilation)));
            start.RegisterAdditionalFileAction(ctx =>
            {
                if (!IsMix(ctx.AdditionalFile)) return;
                var path = SpecBuilder.FrontEndPath(ctx.AdditionalFile.Path);
                foreach (var d in compilation.Value.Diagnostics.Where(d => d.Path == path))
                {
                    var location = Location.Create(ctx.AdditionalFile.Path, new TextSpan(d.Span.Start, d.Span.Length),
                        new LinePositionSpan(new LinePosition(d.Start.Line, d.Start.Character), new LinePosition(d.End.Line, d.End.Character)));
                    ctx.ReportDiagnostic(Microsoft.CodeAnalysis.Diagnostic.Create(s_descriptors[d.Id], location, d.Message));
                }
            });
            // A problem inside a standard-library file (an argument its body rejects) is located there, at its own
            // package path (mix/std/<file>.mix): no project file holds it.
            start.RegisterCompilationEndAction(ctx =>
            {
                foreach (var d in compilation.Value.Diagnostics.Where(d => StandardLibrary.IsLibraryPath(d.Path)))
                {
                    var location = Location.Create(d.Path, new TextSpan(d.Span.Start, d.Span.Length),
                        new LinePositionSpan(new LinePosition(d.Start.Line, d.Start.Character), new LinePosition(d.End.Line, d.End.Character)));
                    ctx.ReportDiagnostic(Microsoft.CodeAnalysis.Diagnostic.Create(s_descriptors[d.Id], location, d.Message));
                }
            });
        });
    }

    /// <summary>The project's C# mixers (<c>[Mixer]</c> classes in source), which .mix files may use.</summary>
    static List<MixerBinding> Mixers(Compilation compilation)
    {
        var result = new List<MixerBinding>();
        var attribute = compilation.GetTypeByMetadataName(MixGenerator.MixerAttributeName);
        if (attribute is null) return result;
        var stack = new Stack<INamespaceOrTypeSymbol>();
        stack.Push(compilation.Assembly.GlobalNamespace);
        while (stack.Count > 0)
        {
            foreach (var member in stack.Pop().GetMembers())
            {
                if (member is INamespaceSymbol ns) stack.Push(ns);
                else if (member is INamedTypeSymbol type)
                {
                    stack.Push(type);
                    var attr = type.GetAttributes().FirstOrDefault(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, attribute));
                    if (attr is not null && MixGenerator.MixerOf(type, attr) is MixerBinding m) result.Add(m);
                }
            }
        }
        return result;
    }

    static bool IsMix(AdditionalText t) => t.Path.EndsWith(".mix", StringComparison.OrdinalIgnoreCase);
}
