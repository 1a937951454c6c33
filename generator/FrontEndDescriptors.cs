using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Mix.Dsl.Diagnostics;

namespace Mix.Generator;

/// <summary>
/// The Roslyn descriptors of the front end's IDs (MIX0xxx). The generator reports them, not an analyzer: the
/// command-line compiler stops before analyzers run when C# has declaration errors, and a broken .mix file causes
/// exactly those (its classes are missing), so an analyzer's report would never show in that build.
/// </summary>
public static class FrontEndDescriptors
{
    static readonly ImmutableDictionary<string, Microsoft.CodeAnalysis.DiagnosticDescriptor> s_descriptors =
        DiagnosticIds.All.ToImmutableDictionary(d => d.Id, Convert);

    static Microsoft.CodeAnalysis.DiagnosticDescriptor Convert(Mix.Dsl.Diagnostics.DiagnosticDescriptor d) => new(
        d.Id, d.Title, "{0}", "Mix." + d.Category,
        d.Severity switch { Severity.Error => DiagnosticSeverity.Error, Severity.Warning => DiagnosticSeverity.Warning, _ => DiagnosticSeverity.Info },
        isEnabledByDefault: true, helpLinkUri: HelpLinks.Language(d.Id, d.Title));

    /// <summary>Every front-end descriptor, by ID.</summary>
    public static IEnumerable<Microsoft.CodeAnalysis.DiagnosticDescriptor> All => s_descriptors.Values.OrderBy(d => d.Id, StringComparer.Ordinal);

    /// <summary>The descriptor of a front-end ID.</summary>
    public static Microsoft.CodeAnalysis.DiagnosticDescriptor For(string id) => s_descriptors[id];
}
