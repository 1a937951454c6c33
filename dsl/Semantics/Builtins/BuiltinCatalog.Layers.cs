using System.Linq;
using Mix.Dsl.Diagnostics;

namespace Mix.Dsl.Semantics;

public static partial class BuiltinCatalog
{
    static void RegisterLayers()
    {
        Add(new BuiltinCallable("linear", CallableKind.Layer, new[]
            { Req("in_features", MixType.Int), Req("out_features", MixType.Int), Opt("bias", MixType.Bool, B(true)) },
            "[*, in_features] -> [*, out_features]", "affine map of the last axis")
        {
            Apply = c =>
            {
                if (c.Input() is not Shape s || !ExpectMinRank(c, s, 1, "[*, in_features]")) return UnknownValue.Instance;
                ExpectDim(c, s, -1, c.Dim("in_features"), "in_features");
                return new TensorValue(s.With(-1, c.Dim("out_features")));
            },
            Weights = c =>
            {
                c.Weight("weight", c.Dim("out_features"), c.Dim("in_features"));
                if (c.Bool("bias") != false) c.Weight("bias", c.Dim("out_features"));
            },
            Validate = c => { CheckPositive(c, "in_features"); CheckPositive(c, "out_features"); },
        });

        foreach (var rank in new[] { 1, 2 })
        {
            var name = rank == 1 ? "conv1d" : "conv2d";
            var pattern = rank == 1 ? "[B, in_channels, L]" : "[B, in_channels, H, W]";
            Add(new BuiltinCallable(name, CallableKind.Layer, new[]
                {
                    Req("in_channels", MixType.Int), Req("out_channels", MixType.Int), Req("kernel_size", MixType.Int),
                    Opt("stride", MixType.Int, I(1)), Opt("padding", MixType.Int, I(0)), Opt("groups", MixType.Int, I(1)),
                    Opt("bias", MixType.Bool, B(true)),
                },
                rank == 1 ? "[B, in_channels, L] -> [B, out_channels, (L + 2·padding − kernel_size)/stride + 1]"
                          : "[B, in_channels, H, W] -> [B, out_channels, (H + 2·padding − kernel_size)/stride + 1, (W + ...)/stride + 1]",
                $"{rank}-D convolution (square kernel)")
            {
                Apply = c =>
                {
                    if (c.Input() is not Shape s || !ExpectRank(c, s, rank + 2, pattern)) return UnknownValue.Instance;
                    ExpectDim(c, s, 1, c.Dim("in_channels"), "in_channels");
                    var k = c.Dim("kernel_size");
                    var p = c.Dim("padding");
                    if (c.Long("stride") is not long stride)
                    {
                        // A symbolic stride: the size is not computed (concrete models compute it exactly).
                        var unknown = s.With(1, c.Dim("out_channels"));
                        for (int a = 2; a < s.Rank; a++) unknown = unknown.With(a, Dim.Symbol("?"));
                        return new TensorValue(unknown);
                    }
                    var result = s.With(1, c.Dim("out_channels"));
                    for (int a = 2; a < s.Rank; a++)
                    {
                        var numer = s[a] + p * Dim.Const(2) - k;
                        var outDim = numer.FloorDivideBy(stride);
                        if (outDim is null) { c.Report(DiagnosticIds.OutOfRange, $"stride must be positive; got {stride}"); return UnknownValue.Instance; }
                        outDim = outDim + Dim.Const(1);
                        if (outDim.AsLong is long o && o <= 0)
                        {
                            c.Report(DiagnosticIds.InputShapeMismatch, $"{name} with kernel {k} and padding {p} needs axis {a} ≥ {k}, got {s}");
                            return UnknownValue.Instance;
                        }
                        result = result.With(a, outDim);
                    }
                    return new TensorValue(result);
                },
                Weights = c =>
                {
                    var inPerGroup = c.Dim("in_channels").DivideBy(c.Dim("groups")) ?? Dim.Symbol("?in_per_group");
                    var k = c.Dim("kernel_size");
                    if (rank == 1) c.Weight("weight", c.Dim("out_channels"), inPerGroup, k);
                    else c.Weight("weight", c.Dim("out_channels"), inPerGroup, k, k);
                    if (c.Bool("bias") != false) c.Weight("bias", c.Dim("out_channels"));
                },
                Validate = c =>
                {
                    CheckPositive(c, "in_channels"); CheckPositive(c, "out_channels"); CheckPositive(c, "kernel_size");
                    CheckPositive(c, "stride"); CheckPositive(c, "groups");
                    if (c.Long("padding") is long pad && pad < 0) c.Report(DiagnosticIds.OutOfRange, $"padding must be ≥ 0; got {pad}");
                    CheckDivides(c, c.Dim("groups"), c.Dim("in_channels"), "groups must divide in_channels");
                    CheckDivides(c, c.Dim("groups"), c.Dim("out_channels"), "groups must divide out_channels");
                },
            });
        }

        // nn.ConvTranspose2d: a strided convolution's transpose (WaveMix's branches upsample with it). No primitive
        // gives its weight layout [in_channels, out_channels / groups, k, k] or its zero-inserting stride.
        Add(new BuiltinCallable("conv_transpose2d", CallableKind.Layer, new[]
            {
                Req("in_channels", MixType.Int), Req("out_channels", MixType.Int), Req("kernel_size", MixType.Int),
                Opt("stride", MixType.Int, I(1)), Opt("padding", MixType.Int, I(0)), Opt("output_padding", MixType.Int, I(0)),
                Opt("groups", MixType.Int, I(1)), Opt("bias", MixType.Bool, B(true)),
            },
            "[B, in_channels, H, W] -> [B, out_channels, (H − 1)·stride − 2·padding + kernel_size + output_padding, (W − 1)·...]",
            "2-D transposed convolution (square kernel)")
        {
            Apply = c =>
            {
                if (c.Input() is not Shape s || !ExpectRank(c, s, 4, "[B, in_channels, H, W]")) return UnknownValue.Instance;
                ExpectDim(c, s, 1, c.Dim("in_channels"), "in_channels");
                var result = s.With(1, c.Dim("out_channels"));
                for (int a = 2; a < 4; a++)
                {
                    var outDim = (s[a] - Dim.Const(1)) * c.Dim("stride") - c.Dim("padding") * Dim.Const(2) + c.Dim("kernel_size")
                        + c.Dim("output_padding");
                    if (outDim.AsLong is long o && o <= 0)
                    {
                        c.Report(DiagnosticIds.InputShapeMismatch, $"conv_transpose2d makes axis {a} of {s} {o} long; it must be positive");
                        return UnknownValue.Instance;
                    }
                    result = result.With(a, outDim);
                }
                return new TensorValue(result);
            },
            Weights = c =>
            {
                var outPerGroup = c.Dim("out_channels").DivideBy(c.Dim("groups")) ?? Dim.Symbol("?out_per_group");
                var k = c.Dim("kernel_size");
                c.Weight("weight", c.Dim("in_channels"), outPerGroup, k, k);
                if (c.Bool("bias") != false) c.Weight("bias", c.Dim("out_channels"));
            },
            Validate = c =>
            {
                CheckPositive(c, "in_channels"); CheckPositive(c, "out_channels"); CheckPositive(c, "kernel_size");
                CheckPositive(c, "stride"); CheckPositive(c, "groups");
                if (c.Long("padding") is long pad && pad < 0) c.Report(DiagnosticIds.OutOfRange, $"padding must be ≥ 0; got {pad}");
                if (c.Long("output_padding") is long op && (op < 0 || (c.Long("stride") is long st && op >= st)))
                    c.Report(DiagnosticIds.OutOfRange, $"output_padding must be ≥ 0 and smaller than stride (as PyTorch's); got {op}");
                CheckDivides(c, c.Dim("groups"), c.Dim("in_channels"), "groups must divide in_channels");
                CheckDivides(c, c.Dim("groups"), c.Dim("out_channels"), "groups must divide out_channels");
            },
        });

        Add(new BuiltinCallable("embedding", CallableKind.Layer, new[]
            { Req("num_embeddings", MixType.Int), Req("embedding_dim", MixType.Int) },
            "long[*] -> [*, embedding_dim]", "lookup table of learned vectors")
        {
            Apply = c =>
            {
                if (c.Input() is not Shape s) return UnknownValue.Instance;
                if (s.ElementType is not ("long" or "int"))
                    c.Report(DiagnosticIds.DtypeMismatch, $"embedding expects integer ids (long[...]) but got {s}");
                var dims = new System.Collections.Generic.List<Dim>(s.Dims) { c.Dim("embedding_dim") };
                return new TensorValue(new Shape(dims));
            },
            Weights = c => c.Weight("weight", c.Dim("num_embeddings"), c.Dim("embedding_dim")),
            Validate = c => { CheckPositive(c, "num_embeddings"); CheckPositive(c, "embedding_dim"); },
        });

        Add(new BuiltinCallable("layernorm_nd", CallableKind.Layer, new[]
            { Req("normalized_shape", MixType.Int.Array()), Opt("eps", MixType.Float, F(1e-5)), Opt("bias", MixType.Bool, B(true)) },
            "[*, normalized_shape...] -> same", "LayerNorm over the trailing axes given by normalized_shape (TSMixer normalizes time × features)")
        {
            Apply = c =>
            {
                if (c.Input() is not Shape s || c.Arg("normalized_shape").AsItems() is not { } items) return Same(c);
                if (!ExpectMinRank(c, s, items.Count, "[*, normalized_shape...]")) return UnknownValue.Instance;
                for (int k = 0; k < items.Count; k++)
                    if (items[k] is IntValue iv) ExpectDim(c, s, s.Rank - items.Count + k, iv.Dim, "normalized_shape");
                return Same(c);
            },
            Weights = c =>
            {
                if (c.Arg("normalized_shape").AsItems() is not { } items) return;
                var dims = items.Select(v => v is IntValue iv ? iv.Dim : Dim.Symbol("?")).ToArray();
                c.Weight("weight", dims);
                if (c.Bool("bias") != false) c.Weight("bias", dims);
            },
        });

        Add(new BuiltinCallable("dropout", CallableKind.Layer, new[] { Opt("p", MixType.Float, F(0.0)) },
            "[*] -> [*]", "zeroes elements with probability p while training")
        {
            Apply = Same,
            Validate = c => CheckProbability(c, "p"),
        });

        Add(new BuiltinCallable("scale", CallableKind.Layer, new[]
            { Req("dim", MixType.Int), Opt("init_value", MixType.Float.Optional(), F(1.0)), Opt("use_nchw", MixType.Bool, B(true)) },
            "[B, dim, *] -> same (use_nchw) or [*, dim] -> same",
            "per-channel learnable scale (layer scale / res scale); identity without weights when init_value is none")
        {
            Apply = c =>
            {
                if (c.Input() is Shape s && !c.IsNone("init_value"))
                {
                    if (c.Bool("use_nchw") != false) { if (ExpectMinRank(c, s, 2, "[B, dim, *]")) ExpectDim(c, s, 1, c.Dim("dim"), "dim"); }
                    else if (ExpectMinRank(c, s, 1, "[*, dim]")) ExpectDim(c, s, -1, c.Dim("dim"), "dim");
                }
                return Same(c);
            },
            Weights = c => { if (!c.IsNone("init_value")) c.Weight("scale", c.Dim("dim")); },
            HasWeights = c => !c.IsNone("init_value"),
        });

        foreach (var conv in new[] { false, true })
        {
            var name = conv ? "conv_mlp" : "mlp";
            Add(new BuiltinCallable(name, CallableKind.Layer, new[]
                {
                    Req("in_features", MixType.Int), Req("hidden_features", MixType.Int),
                    Opt("out_features", MixType.Int.Optional(), None), Opt("act", MixType.Act, Factory("gelu")),
                    Opt("bias", MixType.Bool, B(true)), Opt("drop", MixType.Float, F(0.0)),
                },
                conv ? "[B, in_features, H, W] -> [B, out_features, H, W]" : "[*, in_features] -> [*, out_features]",
                conv ? "two-layer MLP over channels with 1×1 convolutions (timm Mlp, use_conv)" : "two-layer MLP over the last axis (timm Mlp: fc1, act, fc2)")
            {
                Apply = c =>
                {
                    if (c.Input() is not Shape s) return UnknownValue.Instance;
                    var outF = c.IsNone("out_features") ? c.Dim("in_features") : c.Dim("out_features");
                    if (conv)
                    {
                        if (!ExpectRank(c, s, 4, "[B, in_features, H, W]")) return UnknownValue.Instance;
                        ExpectDim(c, s, 1, c.Dim("in_features"), "in_features");
                        return new TensorValue(s.With(1, outF));
                    }
                    if (!ExpectMinRank(c, s, 1, "[*, in_features]")) return UnknownValue.Instance;
                    ExpectDim(c, s, -1, c.Dim("in_features"), "in_features");
                    return new TensorValue(s.With(-1, outF));
                },
                Weights = c =>
                {
                    var inF = c.Dim("in_features");
                    var hid = c.Dim("hidden_features");
                    var outF = c.IsNone("out_features") ? inF : c.Dim("out_features");
                    bool bias = c.Bool("bias") != false;
                    var fc1 = c.Child("fc1", conv ? "conv2d" : "linear");
                    if (conv) fc1?.AddWeight("weight", new[] { hid, inF, Dim.Const(1), Dim.Const(1) }); else fc1?.AddWeight("weight", new[] { hid, inF });
                    if (bias) fc1?.AddWeight("bias", new[] { hid });
                    SubLayer(c, "act", c.Arg("act"), null);
                    var fc2 = c.Child("fc2", conv ? "conv2d" : "linear");
                    if (conv) fc2?.AddWeight("weight", new[] { outF, hid, Dim.Const(1), Dim.Const(1) }); else fc2?.AddWeight("weight", new[] { outF, hid });
                    if (bias) fc2?.AddWeight("bias", new[] { outF });
                },
                Validate = c => { CheckPositive(c, "in_features"); CheckPositive(c, "hidden_features"); CheckProbability(c, "drop"); },
            });
        }

        Add(new BuiltinCallable("swiglu", CallableKind.Layer, new[]
            {
                Req("in_features", MixType.Int), Req("hidden_features", MixType.Int),
                Opt("out_features", MixType.Int.Optional(), None), Opt("bias", MixType.Bool, B(true)),
            },
            "[*, in_features] -> [*, out_features]", "SwiGLU MLP: fc2(silu(fc1_g(x)) ⊙ fc1_x(x)) (timm SwiGLU)")
        {
            Apply = c =>
            {
                if (c.Input() is not Shape s || !ExpectMinRank(c, s, 1, "[*, in_features]")) return UnknownValue.Instance;
                ExpectDim(c, s, -1, c.Dim("in_features"), "in_features");
                return new TensorValue(s.With(-1, c.IsNone("out_features") ? c.Dim("in_features") : c.Dim("out_features")));
            },
            Weights = c =>
            {
                var inF = c.Dim("in_features"); var hid = c.Dim("hidden_features");
                var outF = c.IsNone("out_features") ? inF : c.Dim("out_features");
                bool bias = c.Bool("bias") != false;
                foreach (var n in new[] { "fc1_g", "fc1_x" })
                {
                    var l = c.Child(n, "linear");
                    l?.AddWeight("weight", new[] { hid, inF });
                    if (bias) l?.AddWeight("bias", new[] { hid });
                }
                var fc2 = c.Child("fc2", "linear");
                fc2?.AddWeight("weight", new[] { outF, hid });
                if (bias) fc2?.AddWeight("bias", new[] { outF });
            },
        });

        Add(new BuiltinCallable("mlp_head", CallableKind.Layer, new[]
            {
                Req("dim", MixType.Int), Req("num_classes", MixType.Int), Opt("mlp_ratio", MixType.Float, F(4.0)),
                Opt("act", MixType.Act, Factory("squared_relu")), Opt("norm", MixType.Norm, Factory("layernorm")),
                Opt("drop", MixType.Float, F(0.0)), Opt("bias", MixType.Bool, B(true)),
            },
            "[B, dim] -> [B, num_classes]", "MetaFormer MLP head: fc1, act, norm, drop, fc2")
        {
            Apply = c =>
            {
                if (c.Input() is not Shape s || !ExpectMinRank(c, s, 1, "[B, dim]")) return UnknownValue.Instance;
                ExpectDim(c, s, -1, c.Dim("dim"), "dim");
                return new TensorValue(s.With(-1, c.Dim("num_classes")));
            },
            Weights = c =>
            {
                var dim = c.Dim("dim");
                var hid = Hidden(dim, c.Double("mlp_ratio"), "hidden");
                bool bias = c.Bool("bias") != false;
                var fc1 = c.Child("fc1", "linear");
                fc1?.AddWeight("weight", new[] { hid, dim });
                if (bias) fc1?.AddWeight("bias", new[] { hid });
                SubLayer(c, "act", c.Arg("act"), null);
                SubLayer(c, "norm", c.Arg("norm"), hid);
                var fc2 = c.Child("fc2", "linear");
                fc2?.AddWeight("weight", new[] { c.Dim("num_classes"), hid });
                if (bias) fc2?.AddWeight("bias", new[] { c.Dim("num_classes") });
            },
            Validate = c => { CheckPositive(c, "dim"); CheckPositive(c, "num_classes"); CheckProbability(c, "drop"); },
        });

        Add(new BuiltinCallable("adaptive_avg_pool", CallableKind.Layer, new[] { Opt("flatten", MixType.Bool, B(false)) },
            "[B, C, H, W] -> [B, C, 1, 1] (or [B, C] with flatten)", "global average pooling over H and W")
        {
            Apply = c =>
            {
                if (c.Input() is not Shape s || !ExpectRank(c, s, 4, "[B, C, H, W]")) return UnknownValue.Instance;
                return c.Bool("flatten") == true
                    ? new TensorValue(new Shape(new[] { s[0], s[1] }, s.ElementType))
                    : new TensorValue(new Shape(new[] { s[0], s[1], Dim.Const(1), Dim.Const(1) }, s.ElementType));
            },
        });
    }
}
