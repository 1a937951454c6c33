using System.Linq;
using Mix.Dsl.Diagnostics;

namespace Mix.Dsl.Semantics;

// Decoding state of causal mixers: `s = state([B, d, n])` declares a batch-first state that a later binding of the same
// name updates (`y, s = ssd_scan(..., initial_state = s)`); token_mask(x) says which positions are tokens.
public static partial class BuiltinCatalog
{
    static void RegisterState()
    {
        Add(new BuiltinCallable("state", CallableKind.Function,
            new[] { Req("shape", MixType.Int.Array()), Opt("dtype", MixType.String, new StringValue("float")) },
            "[shape] (batch first)", "a decoding state of a causal mixer: zeros outside a cache, the layer's slot inside one")
        {
            BindsAll = true,
            Apply = c =>
            {
                if (c.Arg("dtype") is StringValue { Value: string dt } && dt != "float")
                {
                    c.Report(DiagnosticIds.OutOfRange, $"a state's dtype is \"float\" (float32, as scans keep their states); got \"{dt}\"");
                    return UnknownValue.Instance;
                }
                if (Evaluator.ShapeOf(c.Arg("shape"), "float") is not Shape shape) return UnknownValue.Instance;
                if (shape.Rank < 2)
                {
                    c.Report(DiagnosticIds.StateNotBatchFirst, $"a state is [batch, ...] with at least one axis after the batch; got {shape}");
                    return UnknownValue.Instance;
                }
                if (shape.Dims.Any(d => d.AsLong is long l && l <= 0))
                {
                    c.Report(DiagnosticIds.OutOfRange, $"state sizes must be positive; got {shape}");
                    return UnknownValue.Instance;
                }
                return new StateDeclValue(shape);
            },
        });

        Fn("causal_attention", new[]
            {
                TensorParam("q"), TensorParam("k"), TensorParam("v"), Opt("scale", MixType.Float.Optional(), None),
                Opt("dropout_p", MixType.Float, F(0)),
            }, 3,
            "q, k, v: [b, h, N, d] -> [b, h, N, d]",
            "causal softmax attention whose keys and values are the mixer's decoding state (a KV slot in a cache); scale defaults to d^-1/2; dropout only while training", c =>
            {
                if (c.Double("dropout_p") is double p && (p < 0 || p >= 1)) c.Report(DiagnosticIds.OutOfRange, $"dropout_p must be in [0, 1); got {p}");
                if (c.Input(0) is not Shape q || !ExpectRank(c, q, 4, "q: [b, h, N, d]")) return UnknownValue.Instance;
                bool ok = Operand(c, c.Input(1), "k", "[b, h, N, d]", q[0], q[1], q[2], q[3])
                    & Operand(c, c.Input(2), "v", "[b, h, N, d]", q[0], q[1], q[2], q[3]);
                return ok ? new TensorValue(q) : UnknownValue.Instance;
            });

        Fn("token_mask", new[] { TensorParam("x") }, 1, "[B, L, ...] -> [B, L]",
            "1 at tokens, 0 at padding (the decoding cache's attention mask; all ones outside a cache)", c =>
            {
                if (c.Input(0) is not Shape x) return UnknownValue.Instance;
                if (x.Rank < 2)
                {
                    c.Report(DiagnosticIds.InputShapeMismatch, $"token_mask expects x: [B, L, ...] (rank ≥ 2) but got {x}");
                    return UnknownValue.Instance;
                }
                return new TensorValue(new Shape(new[] { x[0], x[1] }));
            });
    }
}
