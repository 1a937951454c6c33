using Mix.Dsl.Diagnostics;

namespace Mix.Dsl.Semantics;

public static partial class BuiltinCatalog
{
    static void RegisterMixers()
    {
        Add(new BuiltinCallable("pool", CallableKind.Mixer, new[] { ImplicitDim(), Opt("pool_size", MixType.Int, I(3)) },
            "[B, dim, H, W] -> [B, dim, H, W]", "PoolFormer: avgpool(k, stride 1, pad k/2, count_include_pad=false)(x) − x")
        {
            Apply = c => { Nchw(c); return Same(c); },
            Validate = c => CheckOdd(c, "pool_size"),
        });

        Add(new BuiltinCallable("sepconv", CallableKind.Mixer, new[]
            {
                ImplicitDim(), Opt("expansion_ratio", MixType.Float, F(2.0)), Opt("act1", MixType.Act, Factory("starrelu")),
                Opt("act2", MixType.Act, Factory("identity")), Opt("bias", MixType.Bool, B(false)),
                Opt("kernel_size", MixType.Int, I(7)), Opt("padding", MixType.Int, I(3)),
            },
            "[B, dim, H, W] -> [B, dim, H, W]", "ConvFormer separable conv: pw 1×1 → act1 → k×k depthwise → act2 → pw 1×1")
        {
            Apply = c => { Nchw(c); return Same(c); },
            Weights = c =>
            {
                var dim = c.Dim("dim");
                var mid = Hidden(dim, c.Double("expansion_ratio"), "mid");
                var k = c.Dim("kernel_size");
                bool bias = c.Bool("bias") == true;
                var one = Dim.Const(1);
                var pw1 = c.Child("pwconv1", "conv2d"); pw1?.AddWeight("weight", new[] { mid, dim, one, one }); if (bias) pw1?.AddWeight("bias", new[] { mid });
                SubLayer(c, "act1", c.Arg("act1"), null);
                var dw = c.Child("dwconv", "conv2d"); dw?.AddWeight("weight", new[] { mid, one, k, k }); if (bias) dw?.AddWeight("bias", new[] { mid });
                SubLayer(c, "act2", c.Arg("act2"), null);
                var pw2 = c.Child("pwconv2", "conv2d"); pw2?.AddWeight("weight", new[] { dim, mid, one, one }); if (bias) pw2?.AddWeight("bias", new[] { dim });
            },
            Validate = c =>
            {
                CheckOdd(c, "kernel_size");
                if (c.Long("kernel_size") is long k && c.Long("padding") is long p && 2 * p != k - 1)
                    c.Report(DiagnosticIds.OutOfRange, $"padding must be (kernel_size − 1)/2 = {(k - 1) / 2} to keep H and W; got {p}");
            },
        });

        Add(new BuiltinCallable("attention", CallableKind.Mixer, new[]
            {
                ImplicitDim(), Opt("head_dim", MixType.Int, I(32)), Opt("num_heads", MixType.Int.Optional(), None),
                Opt("qkv_bias", MixType.Bool, B(false)), Opt("proj_bias", MixType.Bool, B(false)),
                Opt("attn_drop", MixType.Float, F(0.0)), Opt("proj_drop", MixType.Float, F(0.0)), Opt("causal", MixType.Bool, B(false)),
            },
            "[B, N, dim] -> [B, N, dim]", "multi-head self-attention (SDPA): qkv, heads of head_dim, proj")
        {
            Apply = c =>
            {
                if (c.Input() is Shape s && ExpectRank(c, s, 3, "[B, N, dim]")) ExpectDim(c, s, 2, c.Dim("dim"), "dim");
                return Same(c);
            },
            Weights = c =>
            {
                var dim = c.Dim("dim");
                var heads = c.IsNone("num_heads") ? (dim.DivideBy(c.Dim("head_dim")) ?? Dim.Symbol("?heads")) : c.Dim("num_heads");
                var inner = heads * c.Dim("head_dim");
                var qkv = c.Child("qkv", "linear"); qkv?.AddWeight("weight", new[] { inner * Dim.Const(3), dim });
                if (c.Bool("qkv_bias") == true) qkv?.AddWeight("bias", new[] { inner * Dim.Const(3) });
                var proj = c.Child("proj", "linear"); proj?.AddWeight("weight", new[] { dim, inner });
                if (c.Bool("proj_bias") == true) proj?.AddWeight("bias", new[] { dim });
                if (c.Node is not null && c.Bool("causal") == true)
                    c.Node.Cache = new CacheFootprint("kv", inner * Dim.Const(2), Dim.Const(0)) { HeadDim = c.Dim("head_dim") };
            },
            Validate = c =>
            {
                CheckPositive(c, "head_dim");
                if (c.IsNone("num_heads")) CheckDivides(c, c.Dim("head_dim"), c.Dim("dim"), "head_dim must divide dim");
                else CheckPositive(c, "num_heads");
                CheckProbability(c, "attn_drop"); CheckProbability(c, "proj_drop");
            },
        });

        Add(new BuiltinCallable("random_mixing", CallableKind.Mixer, new[] { ImplicitDim(), Req("num_tokens", MixType.Int) },
            "[B, dim, H, W] -> [B, dim, H, W] with H·W = num_tokens", "RandFormer: a frozen random softmax(rand(N, N)) token-mixing matrix")
        {
            Apply = c =>
            {
                if (Nchw(c) is Shape s && !Shape.Compatible(s[2] * s[3], c.Dim("num_tokens")))
                    c.Report(DiagnosticIds.InputShapeMismatch, $"random_mixing has num_tokens = {c.Dim("num_tokens")} but the input has H·W = {s[2] * s[3]} ({s})");
                return Same(c);
            },
            Weights = c => c.Weight("random_matrix", c.Dim("num_tokens"), c.Dim("num_tokens")),
            Validate = c => CheckPositive(c, "num_tokens"),
        });

        Add(new BuiltinCallable("global_filter", CallableKind.Mixer, new[] { ImplicitDim(), Req("h", MixType.Int), Req("w", MixType.Int) },
            "[B, h·w, dim] -> [B, h·w, dim]", "GFNet: irfft2(rfft2(x, 'ortho') ⊙ W) with a learned complex filter")
        {
            Apply = c =>
            {
                if (c.Input() is Shape s && ExpectRank(c, s, 3, "[B, N, dim]"))
                {
                    ExpectDim(c, s, 2, c.Dim("dim"), "dim");
                    ExpectDim(c, s, 1, c.Dim("h") * c.Dim("w"), "h·w");
                }
                return Same(c);
            },
            Weights = c =>
            {
                var half = c.Dim("w").FloorDivideBy(2) ?? Dim.Symbol("?w");
                c.Weight("complex_weight", c.Dim("h"), half + Dim.Const(1), c.Dim("dim"), Dim.Const(2));
            },
            Validate = c => { CheckPositive(c, "h"); CheckPositive(c, "w"); },
        });

        foreach (var aff in new[] { false, true })
        {
            var name = aff ? "aff" : "afno";
            Add(new BuiltinCallable(name, CallableKind.Mixer, new[]
                {
                    ImplicitDim(), Opt("num_blocks", MixType.Int, I(8)), Opt("sparsity_threshold", MixType.Float, F(0.01)),
                    Opt("hard_thresholding_fraction", MixType.Float, F(1.0)), Opt("hidden_size_factor", MixType.Int, I(1)),
                },
                "[B, H, W, dim] -> [B, H, W, dim]",
                aff ? "AFF: a block-diagonal complex MLP of the spectrum used as a mask on the spectrum"
                    : "AFNO: block-diagonal complex 2-layer MLP in frequency space with softshrink, plus residual")
            {
                Apply = c =>
                {
                    if (c.Input() is Shape s && ExpectRank(c, s, 4, "[B, H, W, dim]")) ExpectDim(c, s, 3, c.Dim("dim"), "dim");
                    return Same(c);
                },
                Weights = c =>
                {
                    var nb = c.Dim("num_blocks");
                    var bs = c.Dim("dim").DivideBy(nb) ?? Dim.Symbol("?block_size");
                    var hf = bs * c.Dim("hidden_size_factor");
                    var two = Dim.Const(2);
                    c.Weight("w1", two, nb, bs, hf);
                    c.Weight("b1", two, nb, hf);
                    c.Weight("w2", two, nb, hf, bs);
                    c.Weight("b2", two, nb, bs);
                },
                Validate = c =>
                {
                    CheckPositive(c, "num_blocks");
                    CheckDivides(c, c.Dim("num_blocks"), c.Dim("dim"), "num_blocks must divide dim");
                    if (c.Double("hard_thresholding_fraction") is double f && (f <= 0 || f > 1))
                        c.Report(DiagnosticIds.OutOfRange, $"hard_thresholding_fraction must be in (0, 1]; got {f}");
                },
            });
        }

        Add(new BuiltinCallable("mamba", CallableKind.Mixer, new[]
            {
                ImplicitDim(), Opt("d_state", MixType.Int, I(16)), Opt("d_conv", MixType.Int, I(4)), Opt("expand", MixType.Int, I(2)),
                Opt("dt_rank", MixType.Int.Optional(), None), Opt("bias", MixType.Bool, B(false)), Opt("conv_bias", MixType.Bool, B(true)),
            },
            "[B, L, dim] -> [B, L, dim] (causal)", "Mamba S6 selective SSM (Hugging Face MambaMixer names)")
        {
            Apply = c =>
            {
                if (c.Input() is Shape s && ExpectRank(c, s, 3, "[B, L, dim]")) ExpectDim(c, s, 2, c.Dim("dim"), "dim");
                return Same(c);
            },
            Weights = c =>
            {
                var dim = c.Dim("dim");
                var inner = dim * c.Dim("expand");
                var st = c.Dim("d_state");
                var k = c.Dim("d_conv");
                var rank = MambaDtRank(c);
                bool bias = c.Bool("bias") == true;
                c.Weight("A_log", inner, st);
                c.Weight("D", inner);
                var conv = c.Child("conv1d", "conv1d");
                conv?.AddWeight("weight", new[] { inner, Dim.Const(1), k });
                if (c.Bool("conv_bias") != false) conv?.AddWeight("bias", new[] { inner });
                var inProj = c.Child("in_proj", "linear"); inProj?.AddWeight("weight", new[] { inner * Dim.Const(2), dim });
                if (bias) inProj?.AddWeight("bias", new[] { inner * Dim.Const(2) });
                var xProj = c.Child("x_proj", "linear"); xProj?.AddWeight("weight", new[] { rank + st * Dim.Const(2), inner });
                var dt = c.Child("dt_proj", "linear"); dt?.AddWeight("weight", new[] { inner, rank }); dt?.AddWeight("bias", new[] { inner });
                var outProj = c.Child("out_proj", "linear"); outProj?.AddWeight("weight", new[] { dim, inner });
                if (bias) outProj?.AddWeight("bias", new[] { dim });
                // Decoding keeps the last d_conv inputs of the causal conv and the SSM state, per row.
                if (c.Node is not null) c.Node.Cache = new CacheFootprint("ssm+conv", Dim.Const(0), inner * k + inner * st);
            },
            Validate = c => { CheckPositive(c, "d_state"); CheckPositive(c, "d_conv"); CheckPositive(c, "expand"); },
        });
    }

    /// <summary>Hugging Face's default: ceil(hidden_size / 16).</summary>
    static Dim MambaDtRank(BuiltinCall c)
    {
        if (!c.IsNone("dt_rank")) return c.Dim("dt_rank");
        var dim = c.Dim("dim");
        return dim.AsLong is long d ? Dim.Const((d + 15) / 16) : Dim.Symbol($"ceil({dim}/16)");
    }

    static Shape? Nchw(BuiltinCall c)
    {
        if (c.Input() is not Shape s || !ExpectRank(c, s, 4, "[B, dim, H, W]")) return null;
        ExpectDim(c, s, 1, c.Dim("dim"), "dim");
        return s;
    }
}
