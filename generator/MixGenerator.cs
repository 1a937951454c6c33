using System;
using System.Collections.Immutable;
using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;

namespace Mix.Generator;

/// <summary>
/// Generates a TorchSharp module class for every definition in the project's <c>.mix</c> files (AdditionalFiles):
/// each file is parsed on its own and checked with the files it imports (imports resolve within the set), then each
/// file's spec is emitted on its own, so an edit re-checks that file and its importers and regenerates only the files
/// whose spec changed.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class MixGenerator : IIncrementalGenerator
{
    /// <summary>Tracking names of the pipeline steps (for incremental tests).</summary>
    public static class Steps
    {
        /// <summary>Each .mix file's path and text.</summary>
        public const string Inputs = "MixInputs";
        /// <summary>MSBuild settings.</summary>
        public const string Settings = "MixSettings";
        /// <summary>Each file's syntax tree.</summary>
        public const string Parsed = "MixParsed";
        /// <summary>Each file with the files it imports.</summary>
        public const string Units = "MixCheckUnits";
        /// <summary>Each file checked and translated.</summary>
        public const string UnitSpecs = "MixUnitSpecs";
        /// <summary>All specs: hint names and skipping decided over the project.</summary>
        public const string Specs = "MixSpecs";
        /// <summary>One spec per file.</summary>
        public const string FileSpecs = "MixFileSpecs";
        /// <summary>The standard-library files the project imports.</summary>
        public const string Library = "MixLibrary";
        /// <summary>[MixModel] classes.</summary>
        public const string Bindings = "MixModelBindings";
        /// <summary>[MixModel] classes with their resolved specs.</summary>
        public const string BoundModels = "MixBoundModels";
        /// <summary>[Mixer] classes (C# mixers usable from .mix).</summary>
        public const string Mixers = "MixMixers";
        /// <summary>[Mixer] classes as read, with their problems and places.</summary>
        public const string MixerDeclarations = "MixMixerDeclarations";
        /// <summary>[MetaFormerModel] classes as read, with their problems and places.</summary>
        public const string MetaFormerDeclarations = "MixMetaFormerDeclarations";
        /// <summary>[MetaFormerModel] classes as .mix text (no places: moving an attribute does not rerun the front end).</summary>
        public const string MetaFormerModels = "MixMetaFormerModels";
        /// <summary>[MetaFormerModel] classes checked and translated.</summary>
        public const string MetaFormerBuilds = "MixMetaFormerBuilds";
        /// <summary>Whether the project needs the MetaFormer library classes.</summary>
        public const string MetaFormerParts = "MixMetaFormerParts";
        /// <summary>[MetaFormerStage]s without [MetaFormerModel].</summary>
        public const string StrayStages = "MixMetaFormerStrayStages";
    }

    const string AttributeName = "Mix.MixModelAttribute";
    /// <summary>Metadata name of the <c>[Mixer]</c> attribute (generated into every project).</summary>
    public const string MixerAttributeName = "Mix.MixerAttribute";

    /// <inheritdoc />
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        context.RegisterPostInitializationOutput(ctx => ctx.AddSource(AttributeSource.HintName, SourceText.From(AttributeSource.Text, Encoding.UTF8)));

        var inputs = context.AdditionalTextsProvider
            .Where(t => t.Path.EndsWith(".mix", StringComparison.OrdinalIgnoreCase))
            .Combine(context.AnalyzerConfigOptionsProvider)
            .Select((pair, ct) =>
            {
                var ns = pair.Right.GetOptions(pair.Left).TryGetValue("build_metadata.AdditionalFiles.MixNamespace", out var v) && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null;
                return new MixInput(pair.Left.Path, pair.Left.GetText(ct)?.ToString() ?? "", ns);
            })
            .WithTrackingName(Steps.Inputs);

        var settings = context.AnalyzerConfigOptionsProvider
            .Select((o, _) =>
            {
                string Get(string key) => o.GlobalOptions.TryGetValue(key, out var v) ? v.Trim() : "";
                var ns = Get("build_property.MixNamespace");
                if (ns.Length == 0) ns = Get("build_property.RootNamespace");
                if (ns.Length == 0) ns = "Mix.Generated.Models"; // not Mix.Models: that is the zoo registry class (package Mix.Models)
                var fused = !string.Equals(Get("build_property.MixFused"), "false", StringComparison.OrdinalIgnoreCase);
                var root = Get("build_property.MixRoot");
                return new GeneratorSettings(ns, root.Length > 0 ? root : Get("build_property.ProjectDir"), fused);
            })
            .WithTrackingName(Steps.Settings);

        var mixerDeclarations = context.SyntaxProvider.ForAttributeWithMetadataName(MixerAttributeName,
                (node, _) => node is ClassDeclarationSyntax,
                (ctx, ct) => MixerDeclarations.Read((INamedTypeSymbol)ctx.TargetSymbol, ctx.Attributes[0], ctx.SemanticModel.Compilation, ct))
            .WithTrackingName(Steps.MixerDeclarations);
        context.RegisterSourceOutput(mixerDeclarations.Collect(), MixerDeclarations.Report);

        var mixers = mixerDeclarations
            .Where(d => d.Binding is not null)
            .Select((d, _) => d.Binding!)
            .WithTrackingName(Steps.Mixers);

        // Each file is parsed when it changes, and checked (with its imports) when it or an import changes; the
        // last step only names and skips, so an edit re-checks one file, not the project.
        var parsed = inputs.Select((input, _) => SpecBuilder.Parse(input)).WithTrackingName(Steps.Parsed);
        var units = parsed.Combine(parsed.Collect())
            .Select((pair, _) => SpecBuilder.Unit(pair.Left, pair.Right))
            .WithTrackingName(Steps.Units);
        var unitSpecs = units.Combine(mixers.Collect())
            .Select((pair, _) => SpecBuilder.BuildUnit(pair.Left, pair.Right))
            .WithTrackingName(Steps.UnitSpecs);
        var specs = unitSpecs.Collect().Combine(settings)
            .Select((pair, _) => SpecBuilder.Finish(pair.Left, pair.Right))
            .WithTrackingName(Steps.Specs);

        var files = specs.SelectMany((all, _) => all).WithTrackingName(Steps.FileSpecs);

        context.RegisterSourceOutput(files, (spc, file) =>
        {
            foreach (var d in file.Diagnostics)
            {
                var location = Location.Create(d.Path ?? file.MixPath, new TextSpan(d.SpanStart, d.SpanLength),
                    new LinePositionSpan(new LinePosition(d.StartLine, d.StartColumn), new LinePosition(d.EndLine, d.EndColumn)));
                spc.ReportDiagnostic(Diagnostic.Create(Descriptors.ById(d.Id), location, d.Message));
            }
            if (!file.Skipped && file.Classes.Count > 0) spc.AddSource(file.HintName, SourceText.From(Emitter.Emit(file), Encoding.UTF8));
        });

        // The standard library's classes, once per project, for the library files its .mix files import.
        var library = parsed.Collect().Select((all, _) => SpecBuilder.LibraryUsed(all)).WithTrackingName(Steps.Library);
        context.RegisterSourceOutput(library, (spc, paths) =>
        {
            foreach (var path in paths)
            {
                var file = SpecBuilder.LibraryFile(path);
                if (!file.Skipped && file.Classes.Count > 0) spc.AddSource(file.HintName, SourceText.From(Emitter.Emit(file, "internal"), Encoding.UTF8));
            }
        });

        context.RegisterSourceOutput(settings, (spc, s) =>
        {
            if (s.FusedDefault) return;
            spc.AddSource("Mix.Settings.g.cs", SourceText.From(
                "// <auto-generated/>\n#nullable enable\nnamespace Mix.Generated\n{\n    internal static class MixSettings\n    {\n" +
                "        /// <summary>MixFused=false: the fused kernels start off.</summary>\n" +
                "        [global::System.Runtime.CompilerServices.ModuleInitializer]\n" +
                "        internal static void Initialize() => global::Mix.Runtime.Builtins.MixDispatch.FusedEnabled = false;\n    }\n}\n", Encoding.UTF8));
        });

        InitializeMetaFormerModels(context, mixers);

        var bindings = context.SyntaxProvider.ForAttributeWithMetadataName(AttributeName,
                (node, _) => node is ClassDeclarationSyntax,
                (ctx, _) => Bind(ctx))
            .WithTrackingName(Steps.Bindings);

        var bound = bindings.Combine(specs.Combine(settings))
            .Select((pair, _) => Resolve(pair.Left, pair.Right.Left, pair.Right.Right))
            .WithTrackingName(Steps.BoundModels);

        context.RegisterSourceOutput(bound, (spc, item) =>
        {
            var (binding, cls, problem, modelsNamespace) = item;
            if (problem is not null)
            {
                var location = Location.Create(binding.FilePath, new TextSpan(binding.SpanStart, binding.SpanLength),
                    new LinePositionSpan(new LinePosition(binding.StartLine, binding.StartColumn), new LinePosition(binding.EndLine, binding.EndColumn)));
                spc.ReportDiagnostic(Diagnostic.Create(problem.Value.Descriptor, location, problem.Value.Message));
                return;
            }
            if (cls is null) return;
            var file = new FileSpec(binding.Namespace + "." + binding.ClassName + ".MixModel.g.cs", binding.MixPath, binding.Namespace, false,
                new[] { cls }.ToEquatableArray(), EquatableArray<GenDiagnostic>.Empty);
            spc.AddSource(file.HintName, SourceText.From(Emitter.Emit(file, binding.Accessibility, Names.IsNamespace(modelsNamespace) ? modelsNamespace : null), Encoding.UTF8));
        });
    }

    /// <summary>
    /// The <c>[Mixer]</c> declaration of a class, or null when it cannot be used from .mix: arguments that are not
    /// constant strings, a name that is not a .mix name or is a built-in's, parameters or a contract that do not check
    /// (the generator reports why, MIX9110–MIX9112).
    /// </summary>
    public static MixerBinding? MixerOf(INamedTypeSymbol type, AttributeData attr) => MixerDeclarations.BindingOf(type, attr);

    /// <summary>[MetaFormerModel] classes: read (with places) → .mix text (without) → checked and translated → emitted;
    /// the problems are reported with the places joined back in.</summary>
    static void InitializeMetaFormerModels(IncrementalGeneratorInitializationContext context, IncrementalValuesProvider<MixerBinding> mixers)
    {
        var declarations = context.SyntaxProvider.ForAttributeWithMetadataName(MetaFormerModels.ModelAttributeName,
                (node, _) => node is ClassDeclarationSyntax,
                (ctx, ct) => MetaFormerModels.Read(ctx, ct))
            .Where(d => d is not null)
            .Select((d, _) => d!)
            .WithTrackingName(Steps.MetaFormerDeclarations);

        var models = declarations.Select((d, _) => d.Model).WithTrackingName(Steps.MetaFormerModels);

        var builds = models.Combine(mixers.Collect())
            .Select((pair, ct) => MetaFormerModels.Build(pair.Left, pair.Right, ct))
            .WithTrackingName(Steps.MetaFormerBuilds);

        context.RegisterSourceOutput(builds, MetaFormerModels.Emit);
        context.RegisterSourceOutput(declarations.Collect().Combine(builds.Collect()), MetaFormerModels.Report);

        var needsParts = builds.Collect().Select((all, _) => all.Any(b => b.Class is not null)).WithTrackingName(Steps.MetaFormerParts);
        context.RegisterSourceOutput(needsParts, (spc, needed) =>
        {
            if (needed) spc.AddSource(MetaFormerModels.PartsHintName, SourceText.From(MetaFormerModels.PartsSource, Encoding.UTF8));
        });

        var strayStages = context.SyntaxProvider.ForAttributeWithMetadataName(MetaFormerModels.StageAttributeName,
                (node, _) => node is ClassDeclarationSyntax,
                (ctx, ct) => MetaFormerModels.StrayStages(ctx, ct))
            .Where(p => p.Count > 0)
            .WithTrackingName(Steps.StrayStages);
        context.RegisterSourceOutput(strayStages, (spc, problems) =>
        {
            foreach (var p in problems) spc.ReportDiagnostic(Diagnostic.Create(Descriptors.ById(p.Id), p.Where.ToLocation(), p.Message));
        });
    }

    static ModelBinding Bind(GeneratorAttributeSyntaxContext ctx)
    {
        var symbol = (INamedTypeSymbol)ctx.TargetSymbol;
        var attr = ctx.Attributes[0];
        var syntax = attr.ApplicationSyntaxReference?.GetSyntax() ?? ctx.TargetNode;
        var span = syntax.GetLocation().GetLineSpan();
        var args = attr.ConstructorArguments;
        var path = args.Length > 0 ? args[0].Value as string ?? "" : "";
        var name = args.Length > 1 ? args[1].Value as string ?? "" : "";
        string? problem = null;
        var decl = (ClassDeclarationSyntax)ctx.TargetNode;
        if (!decl.Modifiers.Any(m => m.Text == "partial")) problem = "partial";
        else if (symbol.IsStatic) problem = "static";
        else if (symbol.ContainingType is not null || symbol.IsGenericType) problem = "nested";
        else if (symbol.BaseType is { SpecialType: not SpecialType.System_Object }) problem = "base";
        var ns = symbol.ContainingNamespace.IsGlobalNamespace ? "" : symbol.ContainingNamespace.ToDisplayString();
        var access = symbol.DeclaredAccessibility == Accessibility.Public ? "public" : "internal";
        return new ModelBinding(symbol.Name, ns, access, path, name, problem, span.Path, syntax.Span.Start, syntax.Span.Length,
            span.StartLinePosition.Line, span.StartLinePosition.Character, span.EndLinePosition.Line, span.EndLinePosition.Character);
    }

    static (ModelBinding, ClassSpec?, (DiagnosticDescriptor Descriptor, string Message)?, string) Resolve(ModelBinding b, EquatableArray<FileSpec> specs, GeneratorSettings settings)
    {
        switch (b.Problem)
        {
            case "partial": return (b, null, (Descriptors.NotPartial, $"class {b.ClassName} must be partial to receive the .mix model '{b.ModelName}'"), settings.Namespace);
            case "static": return (b, null, (Descriptors.NotPartial, $"class {b.ClassName} must not be static: the generated part is a TorchSharp module, built with new"), settings.Namespace);
            case "nested": return (b, null, (Descriptors.NotPartial, $"class {b.ClassName} must be a top-level, non-generic class to receive a .mix model"), settings.Namespace);
            case "base": return (b, null, (Descriptors.NotPartial, $"class {b.ClassName} must not declare a base class: the generated part derives it from TorchSharp's Module"), settings.Namespace);
        }
        var want = SpecBuilder.FrontEndPath(b.MixPath).TrimStart('/');
        var file = specs.FirstOrDefault(f => SpecBuilder.RelativePath(f.MixPath, settings.ProjectDir).Equals(want, StringComparison.OrdinalIgnoreCase))
                   ?? specs.FirstOrDefault(f => SpecBuilder.FrontEndPath(f.MixPath).EndsWith("/" + want, StringComparison.OrdinalIgnoreCase));
        if (file is null)
        {
            var known = string.Join(", ", specs.Select(f => SpecBuilder.RelativePath(f.MixPath, settings.ProjectDir)));
            return (b, null, (Descriptors.ModelFileNotFound, $"'{b.MixPath}' is not among the project's .mix files" + (known.Length > 0 ? $" ({known})" : "")), settings.Namespace);
        }
        if (file.Skipped) return (b, null, null, settings.Namespace); // the file's errors are reported with it
        var cls = file.Classes.FirstOrDefault(c => c.MixName == b.ModelName);
        if (cls is null)
        {
            var models = string.Join(", ", file.Classes.Where(c => c.Kind == "model").Select(c => c.MixName));
            return (b, null, (Descriptors.ModelNotFound, $"'{b.MixPath}' has no model '{b.ModelName}'" + (models.Length > 0 ? $"; its models are {models}" : "")), settings.Namespace);
        }
        return (b, cls with { Name = b.ClassName }, null, settings.Namespace);
    }
}
