namespace Mix.Dsl.Semantics;

public static partial class BuiltinCatalog
{
    static void RegisterNorms()
    {
        Norm("layernorm", "[*, dim] -> [*, dim]", "LayerNorm over the last axis", lastAxis: true, bias: true, eps: 1e-5);
        Norm("layernorm_nobias", "[*, dim] -> [*, dim]", "LayerNorm over the last axis, no bias", lastAxis: true, bias: false, eps: 1e-5);
        Norm("layernorm2d", "[B, dim, H, W] -> [B, dim, H, W]", "LayerNorm over the channels of NCHW", lastAxis: false, bias: true, eps: 1e-6);
        Norm("layernorm2d_nobias", "[B, dim, H, W] -> [B, dim, H, W]", "LayerNorm over the channels of NCHW, no bias", lastAxis: false, bias: false, eps: 1e-6);
        Norm("groupnorm1", "[B, dim, *] -> [B, dim, *]", "GroupNorm with one group (PoolFormer)", lastAxis: false, bias: true, eps: 1e-5);
        Norm("groupnorm1_nobias", "[B, dim, *] -> [B, dim, *]", "normalizes over (C, H, W) jointly, weight only (sail-sg LayerNormGeneral(normalized_dim=(1, 2, 3), bias=False))", lastAxis: false, bias: false, eps: 1e-6);
        Norm("rmsnorm", "[*, dim] -> [*, dim]", "RMSNorm (weight only, computed in fp32)", lastAxis: true, bias: false, eps: 1e-5);
        Add(new BuiltinCallable("batchnorm2d", CallableKind.Norm, new[]
            {
                Req("dim", MixType.Int), Opt("eps", MixType.Float, F(1e-5)), Opt("momentum", MixType.Float, F(0.1)),
            }, "[B, dim, H, W] -> [B, dim, H, W]", "BatchNorm2d with running statistics")
        {
            Apply = c =>
            {
                if (c.Input() is Shape s && ExpectRank(c, s, 4, "[B, dim, H, W]")) ExpectDim(c, s, 1, c.Dim("dim"), "dim");
                return Same(c);
            },
            Weights = c =>
            {
                var d = c.Dim("dim");
                c.Weight("weight", d);
                c.Weight("bias", d);
                c.Buffer("running_mean", d);
                c.Buffer("running_var", d);
                c.Buffer("num_batches_tracked");
            },
            Validate = c => CheckPositive(c, "dim"),
        });
    }

    static void Norm(string name, string contract, string summary, bool lastAxis, bool bias, double eps)
    {
        Add(new BuiltinCallable(name, CallableKind.Norm, new[] { Req("dim", MixType.Int), Opt("eps", MixType.Float, F(eps)) }, contract, summary)
        {
            Apply = c =>
            {
                if (c.Input() is Shape s)
                {
                    if (lastAxis) { if (ExpectMinRank(c, s, 1, "[*, dim]")) ExpectDim(c, s, -1, c.Dim("dim"), "dim"); }
                    else if (ExpectMinRank(c, s, 2, "[B, dim, *]")) ExpectDim(c, s, 1, c.Dim("dim"), "dim");
                }
                return Same(c);
            },
            Weights = c =>
            {
                c.Weight("weight", c.Dim("dim"));
                if (bias) c.Weight("bias", c.Dim("dim"));
            },
            Validate = c => CheckPositive(c, "dim"),
        });
    }
}
