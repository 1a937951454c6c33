using Microsoft.CodeAnalysis;

namespace Mix.Generator;

/// <summary>Diagnostics of the generator itself (the front end's come from <see cref="MixAnalyzer"/>).</summary>
internal static class Descriptors
{
    const string Help = "docs/generator.md#";

    public static readonly DiagnosticDescriptor Unsupported = new(
        "MIX9001", "Construct not supported by the generator", "{0}", "Generator", DiagnosticSeverity.Warning, true,
        helpLinkUri: Help + "mix9001");

    public static readonly DiagnosticDescriptor ModelFileNotFound = new(
        "MIX9101", "MixModel file not found", "{0}", "Binding", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9101");

    public static readonly DiagnosticDescriptor ModelNotFound = new(
        "MIX9102", "MixModel model not found", "{0}", "Binding", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9102");

    public static readonly DiagnosticDescriptor NotPartial = new(
        "MIX9103", "MixModel class cannot receive the model", "{0}", "Binding", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9103");
}
