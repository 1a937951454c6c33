using System.Collections.Generic;
using Microsoft.CodeAnalysis;

namespace Mix.Generator;

/// <summary>Diagnostics of the generator itself (the front end's are in <see cref="FrontEndDescriptors"/>).</summary>
internal static class Descriptors
{
    const string Help = HelpLinks.BaseUrl + "docs/generator.md#";

    public static readonly DiagnosticDescriptor Unsupported = new(
        "MIX9001", "Construct not supported by the generator", "{0}", "Generator", DiagnosticSeverity.Warning, true,
        helpLinkUri: Help + "mix9001");

    public static readonly DiagnosticDescriptor InvalidNamespace = new(
        "MIX9002", "MixNamespace is not a valid namespace", "{0}", "Generator", DiagnosticSeverity.Error, true,
        helpLinkUri: Help + "mix9002");

    public static readonly DiagnosticDescriptor ModelFileNotFound = new(
        "MIX9101", "MixModel file not found", "{0}", "Binding", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9101");

    public static readonly DiagnosticDescriptor ModelNotFound = new(
        "MIX9102", "MixModel model not found", "{0}", "Binding", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9102");

    public static readonly DiagnosticDescriptor NotPartial = new(
        "MIX9103", "MixModel class cannot receive the model", "{0}", "Binding", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9103");

    // [Mixer] misuse, reported at the attribute or at the argument concerned.

    public static readonly DiagnosticDescriptor MixerArguments = new(
        "MIX9110", "Mixer attribute arguments are malformed", "{0}", "Mixer", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9110");

    public static readonly DiagnosticDescriptor MixerNameClash = new(
        "MIX9111", "Mixer name is already taken", "{0}", "Mixer", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9111");

    public static readonly DiagnosticDescriptor MixerDeclaration = new(
        "MIX9112", "Mixer parameters or shape contract do not check", "{0}", "Mixer", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9112");

    public static readonly DiagnosticDescriptor MixerNotModule = new(
        "MIX9113", "Mixer class is not a constructible Module<Tensor, Tensor>", "{0}", "Mixer", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9113");

    public static readonly DiagnosticDescriptor MixerConstructor = new(
        "MIX9114", "Mixer class has no constructor the generated code can call", "{0}", "Mixer", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9114");

    // [MetaFormerModel] / [MetaFormerStage] misuse.

    public static readonly DiagnosticDescriptor MetaFormerClass = new(
        "MIX9120", "MetaFormerModel class cannot receive the model", "{0}", "MetaFormer", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9120");

    public static readonly DiagnosticDescriptor MetaFormerStages = new(
        "MIX9121", "MetaFormer stages are missing or stray", "{0}", "MetaFormer", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9121");

    public static readonly DiagnosticDescriptor MetaFormerValue = new(
        "MIX9122", "MetaFormer attribute value is invalid", "{0}", "MetaFormer", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9122");

    public static readonly DiagnosticDescriptor MetaFormerUnknownName = new(
        "MIX9123", "MetaFormer attribute names no such mixer, norm or activation", "{0}", "MetaFormer", DiagnosticSeverity.Error, true, helpLinkUri: Help + "mix9123");

    static readonly Dictionary<string, DiagnosticDescriptor> s_byId = new()
    {
        [Unsupported.Id] = Unsupported, [InvalidNamespace.Id] = InvalidNamespace, [ModelFileNotFound.Id] = ModelFileNotFound, [ModelNotFound.Id] = ModelNotFound, [NotPartial.Id] = NotPartial,
        [MixerArguments.Id] = MixerArguments, [MixerNameClash.Id] = MixerNameClash, [MixerDeclaration.Id] = MixerDeclaration,
        [MixerNotModule.Id] = MixerNotModule, [MixerConstructor.Id] = MixerConstructor,
        [MetaFormerClass.Id] = MetaFormerClass, [MetaFormerStages.Id] = MetaFormerStages, [MetaFormerValue.Id] = MetaFormerValue,
        [MetaFormerUnknownName.Id] = MetaFormerUnknownName,
    };

    /// <summary>Every generator descriptor (MIX9xxx).</summary>
    public static IEnumerable<DiagnosticDescriptor> All => s_byId.Values;

    /// <summary>A generator descriptor, or the front end's descriptor of a MIX0xxx ID (front-end errors found in
    /// .mix text the generator synthesized from attributes are reported with the front end's own IDs).</summary>
    public static DiagnosticDescriptor ById(string id) => s_byId.TryGetValue(id, out var d) ? d : FrontEndDescriptors.For(id);
}
