using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Text;
using Mix.Dsl;
using Mix.Dsl.Semantics;

namespace Mix.Generator;

/// <summary>
/// MetaFormer models declared in C# alone: <c>[MetaFormerModel]</c> and one <c>[MetaFormerStage]</c> per stage on a
/// partial class. The attributes become a .mix model that aliases <c>metaformer</c> of a copy of
/// models/metaformer.mix built into the generator, checked by the same front end and translated and emitted
/// like a .mix model, so shapes, timm's state-dict keys and the emitted code are those of the zoo.
/// </summary>
internal static class MetaFormerModels
{
    public const string ModelAttributeName = "Mix.MetaFormerModelAttribute";
    public const string StageAttributeName = "Mix.MetaFormerStageAttribute";
    /// <summary>Where the library's classes (Metaformer, MetaformerBlock, Stem, Downsampling) are emitted, internal.</summary>
    public const string PartsNamespace = "Mix.Generated.MetaFormerParts";
    public const string PartsHintName = "Mix.MetaFormerParts.g.cs";
    const string LibraryPath = "metaformer.mix";

    static readonly Lazy<string> s_library = new(() =>
    {
        using var stream = typeof(MetaFormerModels).Assembly.GetManifestResourceStream("Mix.Generator.metaformer.mix")
            ?? throw new InvalidOperationException("metaformer.mix is not embedded in Mix.Generator");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    /// <summary>The library text (models/metaformer.mix at build time of the generator).</summary>
    public static string Library => s_library.Value;

    // ---- reading the attributes ------------------------------------------------------------------------------

    /// <summary>Collects the spots of arguments, the text and where each piece of it came from.</summary>
    sealed class Reader
    {
        public readonly List<ArgumentSpot> Spots = new();
        public readonly List<AttributeProblem> Problems = new();
        public readonly StringBuilder Text = new();
        public readonly List<TextOrigin> Origins = new();
        public bool Unusable;

        public int AddSpot(ArgumentSpot spot)
        {
            Spots.Add(spot);
            return Spots.Count - 1;
        }

        public void Problem(string id, string message, int spot) => Problems.Add(new AttributeProblem(id, message, Spots[spot].Where));

        public void Write(string text) => Text.Append(text);

        /// <summary>Text whose problems belong to a whole argument or attribute (no offsets into it).</summary>
        public void Write(string text, int spot)
        {
            Origins.Add(new TextOrigin(Text.Length, text.Length, spot, "check"));
            Text.Append(text);
        }

        public void Write(Setting setting, string kind)
        {
            Origins.Add(new TextOrigin(Text.Length, setting.Text.Length, setting.Spot, kind));
            Text.Append(setting.Text);
        }
    }

    /// <summary>A value as .mix text, with the spot it came from (the attribute when it is a default).</summary>
    readonly struct Setting
    {
        public Setting(string text, int spot) => (Text, Spot) = (text, spot);
        public string Text { get; }
        public int Spot { get; }
    }

    /// <summary>One attribute's named arguments, their syntax, and the spot of the attribute itself.</summary>
    sealed class Arguments
    {
        readonly Reader _reader;
        readonly AttributeData _data;
        readonly AttributeSyntax? _syntax;
        public readonly int Spot;

        public Arguments(Reader reader, AttributeData data, AttributeSyntax? syntax, SourceSpot fallback)
        {
            (_reader, _data, _syntax) = (reader, data, syntax);
            Spot = reader.AddSpot(new ArgumentSpot(syntax is not null ? AttributeSpots.Of(syntax) : fallback, false));
        }

        TypedConstant? Named(string name)
        {
            foreach (var kv in _data.NamedArguments)
                if (kv.Key == name) return kv.Value;
            return null;
        }

        int SpotOf(AttributeArgumentSyntax? argument, string? value) => argument is null ? Spot : _reader.AddSpot(AttributeSpots.Value(argument, value));

        /// <summary>A .mix expression (mixer, norm, act); null when not set.</summary>
        public Setting? Expression(string property, string example)
        {
            if (Named(property) is not { } c) return null;
            if (c.Kind == TypedConstantKind.Error) { _reader.Unusable = true; return null; }
            if (c.Value is not string value) return null; // null: as if unset (the stage takes the model's, the model the default)
            int spot = SpotOf(AttributeSpots.NamedArgument(_syntax, property), value);
            if (string.IsNullOrWhiteSpace(value))
            {
                _reader.Problem(Descriptors.MetaFormerValue.Id, $"{property} must be a .mix expression such as {example}; it is empty", spot);
                _reader.Unusable = true;
                return null;
            }
            return new Setting(value, spot);
        }

        public Setting? Bool(string property)
        {
            if (Named(property) is not { } c) return null;
            if (c.Value is not bool b) { _reader.Unusable = true; return null; }
            return new Setting(b ? "true" : "false", SpotOf(AttributeSpots.NamedArgument(_syntax, property), null));
        }

        /// <summary>A number property; <paramref name="check"/> returns the problem, if any.</summary>
        public Setting? Number(string property, Func<double, string?> check, bool integer = false) =>
            Number(Named(property), AttributeSpots.NamedArgument(_syntax, property), property, check, integer);

        public Setting? Constructor(int index, string name, Func<double, string?> check) =>
            Number(index < _data.ConstructorArguments.Length ? _data.ConstructorArguments[index] : null,
                AttributeSpots.ConstructorArgument(_syntax, index, name), name, check, integer: true);

        Setting? Number(TypedConstant? constant, AttributeArgumentSyntax? argument, string name, Func<double, string?> check, bool integer)
        {
            if (constant is not { } c) return null;
            if (c.Kind == TypedConstantKind.Error || c.Value is not IConvertible v || c.Value is bool or string) { _reader.Unusable = true; return null; }
            var d = v.ToDouble(CultureInfo.InvariantCulture);
            int spot = SpotOf(argument, null);
            if (check(d) is { } problem)
            {
                _reader.Problem(Descriptors.MetaFormerValue.Id, $"{name} {problem}; got {Format(d, integer)}", spot);
                _reader.Unusable = true;
                return null;
            }
            return new Setting(Format(d, integer), spot);
        }
    }

    static string Format(double d, bool integer)
    {
        if (integer) return ((long)d).ToString(CultureInfo.InvariantCulture);
        var s = d.ToString("R", CultureInfo.InvariantCulture).Replace("E", "e");
        return s.IndexOfAny(new[] { '.', 'e' }) < 0 ? s + ".0" : s;
    }

    static string? Positive(double d) => d > 0 ? null : "must be positive";
    static string? Rate(double d) => d >= 0 && d < 1 ? null : "must be in [0, 1)";
    static string? Finite(double d) => double.IsNaN(d) || double.IsInfinity(d) ? "must be a finite number (0: no scale)" : null;

    static string Scale(Setting s) => s.Text is "0.0" or "-0.0" ? "none" : s.Text;

    /// <summary>
    /// Reads a <c>[MetaFormerModel]</c> class with the <c>[MetaFormerStage]</c>s on the same declaration. Null for a
    /// second declaration of the same partial class with the attribute (C# reports that duplicate).
    /// </summary>
    public static MetaFormerDeclaration? Read(GeneratorAttributeSyntaxContext ctx, CancellationToken ct)
    {
        var symbol = (INamedTypeSymbol)ctx.TargetSymbol;
        var node = (ClassDeclarationSyntax)ctx.TargetNode;
        var modelAttribute = ctx.Attributes[0];
        var first = symbol.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == ModelAttributeName);
        if (first?.ApplicationSyntaxReference is { } firstRef && (firstRef.SyntaxTree != node.SyntaxTree || !node.Span.Contains(firstRef.Span))) return null;

        var r = new Reader();
        var model = new Arguments(r, modelAttribute, AttributeSpots.Syntax(modelAttribute, ct), AttributeSpots.Of(node.SyntaxTree, node.Identifier.Span));

        var ns = symbol.ContainingNamespace.IsGlobalNamespace ? "" : symbol.ContainingNamespace.ToDisplayString();
        var access = symbol.DeclaredAccessibility == Accessibility.Public ? "public" : "internal";
        string? classProblem =
            !node.Modifiers.Any(m => m.Text == "partial") ? $"class {symbol.Name} must be partial: the generated part holds the model"
            : symbol.ContainingType is not null || symbol.TypeParameters.Length > 0 ? $"class {symbol.Name} must be a top-level, non-generic class to receive a MetaFormer model"
            : symbol.IsStatic || symbol.IsAbstract ? $"class {symbol.Name} must not be {(symbol.IsStatic ? "static" : "abstract")}: the generated part is a sealed module"
            : symbol.BaseType is { SpecialType: not SpecialType.System_Object } ? $"class {symbol.Name} must not declare a base class: the generated part derives it from nn.Module<Tensor, Tensor>"
            : null;
        if (classProblem is not null)
        {
            r.Problem(Descriptors.MetaFormerClass.Id, classProblem, model.Spot);
            r.Unusable = true;
        }

        // Stages: on this declaration, in source order (another part's stages are reported as stray).
        var stageData = symbol.GetAttributes()
            .Where(a => a.AttributeClass?.ToDisplayString() == StageAttributeName && a.ApplicationSyntaxReference is { } sr
                && sr.SyntaxTree == node.SyntaxTree && node.Span.Contains(sr.Span))
            .OrderBy(a => a.ApplicationSyntaxReference!.Span.Start)
            .ToList();
        if (stageData.Count == 0)
        {
            r.Problem(Descriptors.MetaFormerStages.Id, $"class {symbol.Name} has no [MetaFormerStage]: declare one per stage, in order, e.g. [MetaFormerStage(2, 64)]", model.Spot);
            r.Unusable = true;
        }

        var mixName = MixName(symbol.Name);
        var defaultMixer = model.Expression("Mixer", "pool, sepconv or attention(head_dim = 32)");
        var defaultNorm = model.Expression("Norm", "layernorm2d_nobias or groupnorm1");
        var defaultChannelsLast = model.Bool("ChannelsLast");
        var defaultLayerScale = model.Number("LayerScale", Finite);
        var defaultResScale = model.Number("ResScale", Finite);
        var inChannels = model.Number("InChannels", Positive, integer: true);
        var numClasses = model.Number("NumClasses", Positive, integer: true);
        var mlpAct = model.Expression("MlpAct", "starrelu or gelu");
        var mlpBias = model.Bool("MlpBias");
        var downsampleNorm = model.Expression("DownsampleNorm", "layernorm2d_nobias or identity");
        var outputNorm = model.Expression("OutputNorm", "layernorm2d");
        var mlpHead = model.Bool("MlpHead");
        var dropPath = model.Number("DropPathRate", Rate);
        var headDropout = model.Number("HeadDropout", Rate);

        var stages = new List<Stage>();
        foreach (var (data, i) in stageData.Select((d, i) => (d, i)))
        {
            var stage = new Arguments(r, data, AttributeSpots.Syntax(data, ct), r.Spots[model.Spot].Where);
            var depth = stage.Constructor(0, "depth", Positive);
            var dim = stage.Constructor(1, "dim", Positive);
            var mixer = stage.Expression("Mixer", "pool, sepconv or attention(head_dim = 32)");
            var norm = stage.Expression("Norm", "layernorm2d_nobias or groupnorm1");
            var channelsLast = stage.Bool("ChannelsLast");
            var layerScale = stage.Number("LayerScale", Finite);
            var resScale = stage.Number("ResScale", Finite);
            if (depth is null || dim is null) { r.Unusable = true; continue; }
            stages.Add(new Stage(stage.Spot, depth.Value, dim.Value,
                mixer ?? defaultMixer ?? new Setting("pool", model.Spot),
                norm ?? defaultNorm ?? new Setting("layernorm2d_nobias", model.Spot),
                channelsLast ?? defaultChannelsLast ?? new Setting("false", model.Spot),
                layerScale ?? defaultLayerScale ?? new Setting("0.0", model.Spot),
                // timm's MetaFormer: res scale none in the first two stages, 1.0 after (res_scale_init_values=(None, None, 1.0, 1.0)).
                resScale ?? defaultResScale ?? new Setting(i < 2 ? "0.0" : "1.0", model.Spot)));
        }

        string? text = null;
        if (!r.Unusable)
        {
            r.Write($"// [MetaFormerModel] {(ns.Length > 0 ? ns + "." : "")}{symbol.Name}, synthesized by Mix.Generator.\nimport \"{LibraryPath}\"\n\n");
            r.Write($"model {mixName}(num_classes: int = ");
            r.Write(numClasses ?? new Setting("1000", model.Spot), "value");
            r.Write(", in_channels: int = ");
            r.Write(inChannels ?? new Setting("3", model.Spot), "value");
            r.Write(", drop_path_rate: float = ");
            r.Write(dropPath ?? new Setting("0.0", model.Spot), "value");
            r.Write(", head_dropout: float = ");
            r.Write(headDropout ?? new Setting("0.0", model.Spot), "value");
            r.Write(") = metaformer(\n  in_chans = in_channels, num_classes = num_classes,\n");
            void List(string name, Func<Stage, Setting> pick, string kind)
            {
                r.Write($"  {name} = [");
                for (int i = 0; i < stages.Count; i++)
                {
                    if (i > 0) r.Write(", ");
                    r.Write(pick(stages[i]), kind);
                }
                r.Write("],\n");
            }
            List("depths", s => s.Depth, "value");
            List("dims", s => s.Dim, "value");
            List("token_mixers", s => s.Mixer, "mixer");
            List("use_nchw", s => new Setting(s.ChannelsLast.Text == "true" ? "false" : "true", s.ChannelsLast.Spot), "value");
            List("norms", s => s.Norm, "norm");
            List("layer_scales", s => new Setting(Scale(s.LayerScale), s.LayerScale.Spot), "value");
            List("res_scales", s => new Setting(Scale(s.ResScale), s.ResScale.Spot), "value");
            r.Write("  mlp_act = ");
            r.Write(mlpAct ?? new Setting("starrelu", model.Spot), "act");
            r.Write(", mlp_bias = ");
            r.Write(mlpBias ?? new Setting("false", model.Spot), "value");
            r.Write(",\n  downsample_norm = ");
            r.Write(downsampleNorm ?? new Setting("layernorm2d_nobias", model.Spot), "norm");
            r.Write(", output_norm = ");
            r.Write(outputNorm ?? new Setting("layernorm2d", model.Spot), "norm");
            r.Write(", use_mlp_head = ");
            r.Write(mlpHead ?? new Setting("true", model.Spot), "value");
            r.Write(",\n  drop_path_rate = drop_path_rate, head_dropout = head_dropout)\n");
            for (int i = 0; i < stages.Count; i++) WriteCheck(r, stages[i], i + 1);
            text = r.Text.ToString();
        }
        var spec = new MetaFormerModel(symbol.Name, ns, access, mixName, text, (text is null ? new List<TextOrigin>() : r.Origins).ToEquatableArray());
        return new MetaFormerDeclaration(spec, r.Spots.ToEquatableArray(), r.Problems.ToEquatableArray());
    }

    /// <summary>A stage as .mix text, and the spot of its attribute.</summary>
    sealed record Stage(int Spot, Setting Depth, Setting Dim, Setting Mixer, Setting Norm, Setting ChannelsLast, Setting LayerScale, Setting ResScale);

    /// <summary>
    /// A stage's mixer and norm checked on their own, on the stage's channels and layout: the front end reports a
    /// problem found inside metaformer.mix only there, where it cannot say which stage it came from; here it lands on
    /// the stage's Mixer or Norm argument, or on the stage (a layout the mixer does not take).
    /// </summary>
    static void WriteCheck(Reader r, Stage stage, int number)
    {
        var dim = stage.Dim.Text;
        r.Write($"\n// Stage {number} on its own.\nblock check_stage_{number}(token_mixer: mixer = ");
        r.Write(stage.Mixer, "mixer");
        r.Write(", norm: norm = ");
        r.Write(stage.Norm, "norm");
        r.Write($") (x: [B, {dim}, H, W]) -> [B, {dim}, H, W]\n{{\n");
        r.Write($"  norm1 = norm({dim})\n", stage.Norm.Spot);
        r.Write($"  token_mixer = token_mixer({dim})\n", stage.Mixer.Spot);
        r.Write(stage.ChannelsLast.Text == "true" ? "  return image(token_mixer(norm1(tokens(x))), H, W)\n" : "  return token_mixer(norm1(x))\n", stage.Spot);
        r.Write("}\n");
    }

    /// <summary>The .mix name of a class: snake_case, kept apart from the library's names and .mix keywords.</summary>
    static string MixName(string className)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < className.Length; i++)
        {
            var c = className[i];
            if (char.IsUpper(c) && i > 0 && (char.IsLower(className[i - 1]) || char.IsDigit(className[i - 1])
                || (i + 1 < className.Length && char.IsLower(className[i + 1]) && char.IsUpper(className[i - 1]))))
                sb.Append('_');
            sb.Append(c < 128 && char.IsLetterOrDigit(c) ? char.ToLowerInvariant(c) : '_');
        }
        var name = sb.ToString().Trim('_');
        if (name.Length == 0 || char.IsDigit(name[0])) name = "m_" + name;
        return s_taken.Contains(name) || name.StartsWith("check_stage_", StringComparison.Ordinal) || BuiltinCatalog.Find(name) is not null ? name + "_model" : name;
    }

    /// <summary>The library's definitions and the .mix keywords: a class of that name gets a <c>_model</c> suffix in .mix.</summary>
    static readonly HashSet<string> s_taken = new(StringComparer.Ordinal)
    {
        "stem", "downsampling", "metaformer_block", "metaformer",
        "import", "enum", "return", "if", "then", "else", "for", "in", "true", "false", "none", "and", "or", "not",
    };

    /// <summary>[MetaFormerStage]s on a declaration that has no [MetaFormerModel]: reported, never used.</summary>
    public static EquatableArray<AttributeProblem> StrayStages(GeneratorAttributeSyntaxContext ctx, CancellationToken ct)
    {
        var node = (ClassDeclarationSyntax)ctx.TargetNode;
        bool hasModel = ctx.TargetSymbol.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == ModelAttributeName
            && a.ApplicationSyntaxReference is { } sr && sr.SyntaxTree == node.SyntaxTree && node.Span.Contains(sr.Span));
        if (hasModel) return EquatableArray<AttributeProblem>.Empty;
        return ctx.Attributes
            .Select(a => AttributeSpots.Syntax(a, ct))
            .Where(s => s is not null)
            .Select(s => new AttributeProblem(Descriptors.MetaFormerStages.Id,
                $"[MetaFormerStage] on class {ctx.TargetSymbol.Name} needs [MetaFormerModel] on the same declaration", AttributeSpots.Of(s!)))
            .ToEquatableArray();
    }

    // ---- checking and translating ----------------------------------------------------------------------------

    /// <summary>Checks the synthesized model with the front end (C# mixers included) and translates it.</summary>
    public static MetaFormerBuild Build(MetaFormerModel model, ImmutableArray<MixerBinding> mixers, CancellationToken ct)
    {
        if (model.MixText is null) return new MetaFormerBuild(model.FullName, model.Namespace, model.Accessibility, null, EquatableArray<SynthesizedProblem>.Empty);
        var externals = SpecBuilder.DistinctMixers(mixers);

        var problems = CheckNames(model, externals);
        if (problems.Count > 0) return new MetaFormerBuild(model.FullName, model.Namespace, model.Accessibility, null, problems.ToEquatableArray());

        ct.ThrowIfCancellationRequested();
        var path = model.FullName + ".mix";
        var compilation = MixCompilation.Create(
            new[] { new Mix.Dsl.Text.SourceText(LibraryPath, Library), new Mix.Dsl.Text.SourceText(path, model.MixText) },
            externals.Select(SpecBuilder.Front));
        // Problems inside metaformer.mix follow from the attributes; when the attributes' own text has errors, they
        // are consequences of those and left out.
        bool ownErrors = compilation.Diagnostics.Any(d => d.Path == path && d.Severity == Mix.Dsl.Diagnostics.Severity.Error);
        foreach (var d in compilation.Diagnostics.Where(d => d.Path == path || !ownErrors))
            problems.Add(new SynthesizedProblem(d.Id, d.Message, d.Span.Start, d.Span.Length, d.Path != path));
        if (compilation.HasErrors) return new MetaFormerBuild(model.FullName, model.Namespace, model.Accessibility, null, problems.ToEquatableArray());

        var definition = compilation.Definitions.First(d => d.Path == path && d.Name == model.MixName);
        try
        {
            var cls = Translate(definition, compilation, externals);
            return new MetaFormerBuild(model.FullName, model.Namespace, model.Accessibility, cls with { Name = model.ClassName }, problems.ToEquatableArray());
        }
        catch (UnsupportedException e)
        {
            problems.Add(new SynthesizedProblem(SpecBuilder.UnsupportedId, $"{model.ClassName}: {e.Message}", e.Span.Start, e.Span.Length, false));
            return new MetaFormerBuild(model.FullName, model.Namespace, model.Accessibility, null, problems.ToEquatableArray());
        }
    }

    /// <summary>Mixer, norm and activation names checked before the front end, against the catalog and the C# mixers,
    /// so a misspelt stage mixer gets one clear message at its argument.</summary>
    static List<SynthesizedProblem> CheckNames(MetaFormerModel model, List<MixerBinding> externals)
    {
        var problems = new List<SynthesizedProblem>();
        foreach (var o in model.Origins.Where(o => o.Kind is "mixer" or "norm" or "act"))
        {
            var value = model.MixText!.Substring(o.Start, o.Length);
            int start = 0;
            while (start < value.Length && char.IsWhiteSpace(value[start])) start++;
            int end = start;
            while (end < value.Length && (char.IsLetterOrDigit(value[end]) || value[end] == '_')) end++;
            if (end == start) continue; // not a name: the front end explains
            var name = value.Substring(start, end - start);
            var wanted = o.Kind == "mixer" ? CallableKind.Mixer : o.Kind == "norm" ? CallableKind.Norm : CallableKind.Act;
            var builtin = BuiltinCatalog.Find(name);
            bool known = name == "identity" || builtin?.Kind == wanted || (wanted == CallableKind.Mixer && externals.Any(m => m.Name == name));
            if (known) continue;
            var what = o.Kind == "act" ? "activation" : o.Kind;
            var candidates = BuiltinCatalog.All.Values.Where(b => b.Kind == wanted).Select(b => b.Name)
                .Concat(wanted == CallableKind.Mixer ? externals.Select(m => m.Name) : Enumerable.Empty<string>())
                .Append("identity").Distinct().OrderBy(n => n, StringComparer.Ordinal);
            var isOther = builtin is not null ? $" ('{name}' is a {MixerDeclarations.Kind(builtin.Kind)})" : "";
            problems.Add(new SynthesizedProblem(Descriptors.MetaFormerUnknownName.Id,
                $"'{name}' is not a {what}{isOther}; the {what}s are {string.Join(", ", candidates)}" +
                (wanted == CallableKind.Mixer ? ", and [Mixer] classes of this project" : ""), o.Start + start, end - start, false));
        }
        return problems;
    }

    static ClassSpec Translate(CheckedDefinition definition, MixCompilation compilation, IReadOnlyList<MixerBinding> externals)
    {
        var (defs, enumMembers, externalTypes) = SpecBuilder.TranslationContext(compilation, externals);
        return WithoutLines(new Translator(definition, defs, enumMembers, externalTypes).Translate());
    }

    /// <summary>No #line: the .mix text of these classes exists only inside the generator.</summary>
    static ClassSpec WithoutLines(ClassSpec c) => c with
    {
        Constructor = c.Constructor.Select(l => l with { Line = 0 }).ToEquatableArray(),
        Forward = c.Forward.Select(l => l with { Line = 0 }).ToEquatableArray(),
    };

    // ---- output ----------------------------------------------------------------------------------------------

    /// <summary>The library's classes, emitted once per project that has a MetaFormer model (internal).</summary>
    static readonly Lazy<string> s_parts = new(() =>
    {
        var compilation = MixCompilation.Create(LibraryPath, Library);
        if (compilation.HasErrors) throw new InvalidOperationException("the built-in metaformer.mix does not check: " + compilation.Diagnostics.First());
        var defs = compilation.Definitions.ToDictionary(d => d.Name, d => d.Callable, StringComparer.Ordinal);
        var classes = compilation.Definitions.Select(d => WithoutLines(new Translator(d, defs).Translate())).ToEquatableArray();
        var file = new FileSpec(PartsHintName, LibraryPath, PartsNamespace, false, classes, EquatableArray<GenDiagnostic>.Empty);
        return Retitle(Emitter.Emit(file, "internal"),
            "// The MetaFormer library (models/metaformer.mix, built into Mix.Generator) for the [MetaFormerModel] classes of this project.");
    });

    public static string PartsSource => s_parts.Value;

    static string Retitle(string source, string title)
    {
        int start = source.IndexOf('\n') + 1;
        int end = source.IndexOf('\n', start);
        return source.Substring(0, start) + title + source.Substring(end);
    }

    public static void Emit(SourceProductionContext context, MetaFormerBuild build)
    {
        if (build.Class is null) return;
        var file = new FileSpec(build.FullName + ".MetaFormer.g.cs", build.FullName, build.Namespace, false,
            new[] { build.Class }.ToEquatableArray(), EquatableArray<GenDiagnostic>.Empty);
        var source = Retitle(Emitter.Emit(file, build.Accessibility, PartsNamespace),
            $"// Generated by Mix.Generator from the [MetaFormerModel] and [MetaFormerStage] attributes of {build.FullName}. Edit the attributes, not this file.");
        context.AddSource(file.HintName, SourceText.From(source, Encoding.UTF8));
    }

    /// <summary>Reports the attributes' own problems, and the problems of the synthesized text at the argument the
    /// offending text came from (the model attribute when it came from the library or from no argument).</summary>
    public static void Report(SourceProductionContext context, (ImmutableArray<MetaFormerDeclaration> Declarations, ImmutableArray<MetaFormerBuild> Builds) input)
    {
        foreach (var declaration in input.Declarations)
        {
            foreach (var p in declaration.Problems)
                context.ReportDiagnostic(Diagnostic.Create(Descriptors.ById(p.Id), p.Where.ToLocation(), p.Message));
            var build = input.Builds.FirstOrDefault(b => b.FullName == declaration.Model.FullName);
            if (build is null) continue;
            // A stage's text appears in the model and in its check, and stages share the model's settings: one report each.
            var reported = new HashSet<(string, string, SourceSpot)>();
            foreach (var p in build.Problems)
            {
                var where = Locate(declaration, p);
                var message = p.InLibrary ? $"{p.Message} (inside metaformer.mix, as configured by these attributes)" : p.Message;
                if (reported.Add((p.Id, message, where)))
                    context.ReportDiagnostic(Diagnostic.Create(Descriptors.ById(p.Id), where.ToLocation(), message));
            }
        }
    }

    static SourceSpot Locate(MetaFormerDeclaration declaration, SynthesizedProblem p)
    {
        if (!p.InLibrary)
        {
            // The innermost piece of text the problem starts in; at its end counts (a missing ')' after a mixer's arguments).
            var origin = declaration.Model.Origins
                .Where(o => p.Start >= o.Start && p.Start <= o.Start + o.Length)
                .OrderBy(o => o.Length)
                .FirstOrDefault();
            if (origin is { Kind: "check" }) return declaration.Spots[origin.Spot].Where;
            if (origin is not null)
                return AttributeSpots.Part(declaration.Spots[origin.Spot], p.Start - origin.Start, Math.Min(p.Length, origin.Start + origin.Length - p.Start));
        }
        return declaration.Spots[0].Where;
    }
}
