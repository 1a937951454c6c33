namespace Mix.Dsl.Semantics;

public static partial class BuiltinCatalog
{
    static void RegisterActivations()
    {
        foreach (var (name, summary) in new[]
        {
            ("gelu", "GELU (exact erf form)"), ("relu", "ReLU"), ("silu", "SiLU / swish"), ("sigmoid", "logistic sigmoid"),
            ("tanh", "hyperbolic tangent"), ("softplus", "log(1 + exp(x))"), ("squared_relu", "relu(x)²"),
        })
        {
            Add(new BuiltinCallable(name, CallableKind.Act, new ParamSpec[0], "[*] -> [*]", summary) { Apply = Same });
        }

        Add(new BuiltinCallable("starrelu", CallableKind.Act, new[]
            {
                Opt("scale_value", MixType.Float, F(1.0)), Opt("bias_value", MixType.Float, F(0.0)),
                Opt("scale_learnable", MixType.Bool, B(true)), Opt("bias_learnable", MixType.Bool, B(true)),
            }, "[*] -> [*]", "s · relu(x)² + b with learnable scalars s, b (MetaFormer)")
        {
            Apply = Same,
            Weights = c => { c.Weight("scale", Dim.Const(1)); c.Weight("bias", Dim.Const(1)); },
        });

        // identity stands in for any kind (a mixer, norm, act or block that does nothing), as nn.Identity does in timm.
        Add(new BuiltinCallable("identity", CallableKind.Act, new[] { Opt("dim", MixType.Int.Optional(), None) },
            "[*] -> [*]", "returns its input; usable wherever a mixer, norm, act or block is expected")
        {
            Apply = Same,
        });
    }
}
