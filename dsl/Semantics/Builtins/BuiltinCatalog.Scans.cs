using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;

namespace Mix.Dsl.Semantics;

// The scan primitives (runtime/Scans): recurrences and long convolutions with a chunked reference path, a decode step
// and a fused CUDA path. Inputs are positional tensors; optional tensors (D, z, biases, states) are passed by name.
public static partial class BuiltinCatalog
{
    static void RegisterScans()
    {
        var optTensor = MixType.Tensor.Optional();

        Fn("selective_scan", new[]
            {
                TensorParam("u"), TensorParam("delta"), TensorParam("A"), TensorParam("B"), TensorParam("C"),
                Opt("D", optTensor, None), Opt("z", optTensor, None), Opt("delta_bias", optTensor, None),
                Opt("delta_softplus", MixType.Bool, B(false)), Opt("initial_state", optTensor, None),
            }, 5,
            "u, delta, z: [b, d, L]; A: [d, n]; B, C: [b, n, L]; D, delta_bias: [d]; initial_state: [b, d, n] -> [b, d, L] (with initial_state: ([b, d, L], [b, d, n]))",
            "Mamba's S6 selective scan (mamba_ssm selective_scan_fn); with initial_state it returns (y, final_state)", c =>
            {
                if (c.Input(0) is not Shape u || !ExpectRank(c, u, 3, "u: [b, d, L]")) return UnknownValue.Instance;
                Dim b = u[0], d = u[1], L = u[2];
                bool ok = Operand(c, c.Input(1), "delta", "[b, d, L]", b, d, L)
                    & Operand(c, c.Input(2), "A", "[d, n]", d, null);
                var n = c.Input(2) is { Rank: 2 } a ? a[1] : null;
                ok &= Operand(c, c.Input(3), "B", "[b, n, L]", b, n, L)
                    & Operand(c, c.Input(4), "C", "[b, n, L]", b, n, L)
                    & Operand(c, Named(c, "D"), "D", "[d]", d)
                    & Operand(c, Named(c, "z"), "z", "[b, d, L]", b, d, L)
                    & Operand(c, Named(c, "delta_bias"), "delta_bias", "[d]", d)
                    & Operand(c, Named(c, "initial_state"), "initial_state", "[b, d, n]", b, d, n);
                if (!ok) return UnknownValue.Instance;
                return Named(c, "initial_state") is null ? new TensorValue(u) : Pair(u, new Shape(new[] { b, d, n ?? Dim.Symbol("?n") }, u.ElementType));
            }, tupleWhenGiven: "initial_state");

        Fn("ssd_scan", new[]
            {
                TensorParam("x"), TensorParam("dt"), TensorParam("A"), TensorParam("B"), TensorParam("C"),
                Opt("chunk_size", MixType.Int, I(64)), Opt("D", optTensor, None), Opt("z", optTensor, None),
                Opt("dt_bias", optTensor, None), Opt("dt_softplus", MixType.Bool, B(false)), Opt("initial_state", optTensor, None),
            }, 5,
            "x, z: [b, l, h, p]; dt: [b, l, h]; A, dt_bias: [h]; B, C: [b, l, g, n]; D: [h] or [h, p]; initial_state: [b, h, p, n] -> ([b, l, h, p], [b, h, p, n])",
            "Mamba-2 state-space duality scan (mamba_chunk_scan_combined); returns (y, final_state)", c =>
            {
                CheckPositive(c, "chunk_size");
                if (c.Input(0) is not Shape x || !ExpectRank(c, x, 4, "x: [b, l, h, p]")) return UnknownValue.Instance;
                Dim b = x[0], l = x[1], h = x[2], p = x[3];
                bool ok = Operand(c, c.Input(1), "dt", "[b, l, h]", b, l, h)
                    & Operand(c, c.Input(2), "A", "[h]", h)
                    & Operand(c, c.Input(3), "B", "[b, l, g, n]", b, l, null, null);
                var B = c.Input(3);
                Dim? g = B is { Rank: 4 } ? B[2] : null, n = B is { Rank: 4 } ? B[3] : null;
                ok &= Operand(c, c.Input(4), "C", "[b, l, g, n]", b, l, g, n);
                if (g is not null) CheckDivides(c, g, h, "ssd_scan: the groups of B and C must divide the heads");
                if (Named(c, "D") is { } D && !(D.Rank == 1 && Shape.Compatible(D[0], h)) && !(D.Rank == 2 && Shape.Compatible(D[0], h) && Shape.Compatible(D[1], p)))
                {
                    c.Report(DiagnosticIds.InputShapeMismatch, $"ssd_scan expects D = [h] or [h, p] = [{h}] or [{h}, {p}] but got {D}");
                    ok = false;
                }
                ok &= Operand(c, Named(c, "z"), "z", "[b, l, h, p]", b, l, h, p)
                    & Operand(c, Named(c, "dt_bias"), "dt_bias", "[h]", h)
                    & Operand(c, Named(c, "initial_state"), "initial_state", "[b, h, p, n]", b, h, p, n);
                if (!ok) return UnknownValue.Instance;
                return Pair(x, new Shape(new[] { b, h, p, n ?? Dim.Symbol("?n") }, x.ElementType));
            }, returnsTuple: true);

        Fn("gla_scan", new[]
            {
                TensorParam("q"), TensorParam("k"), TensorParam("v"), TensorParam("g"),
                Opt("scale", MixType.Float.Optional(), None), Opt("chunk_size", MixType.Int, I(64)), Opt("initial_state", optTensor, None),
            }, 4,
            "q, k, g: [b, T, h, K]; v: [b, T, h, V]; initial_state: [b, h, K, V] -> ([b, T, h, V], [b, h, K, V])",
            "gated linear attention S_t = diag(exp g_t) S_{t-1} + k_tᵀ v_t, o_t = scale·q_t S_t (fla chunk_gla); returns (o, final_state)", c =>
            {
                CheckPositive(c, "chunk_size");
                if (c.Input(0) is not Shape q || !ExpectRank(c, q, 4, "q: [b, T, h, K]")) return UnknownValue.Instance;
                Dim b = q[0], T = q[1], h = q[2], K = q[3];
                bool ok = Operand(c, c.Input(1), "k", "[b, T, h, K]", b, T, h, K)
                    & Operand(c, c.Input(2), "v", "[b, T, h, V]", b, T, h, null)
                    & Operand(c, c.Input(3), "g", "[b, T, h, K]", b, T, h, K);
                Dim? V = c.Input(2) is { Rank: 4 } v ? v[3] : null;
                ok &= Operand(c, Named(c, "initial_state"), "initial_state", "[b, h, K, V]", b, h, K, V);
                if (!ok) return UnknownValue.Instance;
                var Vd = V ?? Dim.Symbol("?V");
                return Pair(new Shape(new[] { b, T, h, Vd }, q.ElementType), new Shape(new[] { b, h, K, Vd }, q.ElementType));
            }, returnsTuple: true);

        Fn("fft_conv", new[] { TensorParam("u"), TensorParam("k"), Opt("causal", MixType.Bool, B(true)) }, 2,
            "u: [b, d, L]; k: [d, Lk] or [b, d, Lk] (causal: Lk ≤ L; otherwise odd Lk ≤ 2L−1, centred) -> [b, d, L]",
            "long convolution by FFT (Hyena / M2 fftconv, D skip left to the caller)", c =>
            {
                if (c.Input(0) is not Shape u || !ExpectRank(c, u, 3, "u: [b, d, L]")) return UnknownValue.Instance;
                if (c.Input(1) is not Shape k) return UnknownValue.Instance;
                bool ok = k.Rank == 3 ? Operand(c, k, "k", "[b, d, Lk]", u[0], u[1], null) : Operand(c, k, "k", "[d, Lk]", u[1], null);
                if (!ok) return UnknownValue.Instance;
                bool causal = c.Bool("causal") != false;
                if (k[-1].AsLong is long lk && u[2].AsLong is long len)
                {
                    if (causal && lk > len)
                        c.Report(DiagnosticIds.InputShapeMismatch, $"fft_conv: a causal filter of {lk} taps is longer than the {len} steps of u");
                    else if (!causal && (lk % 2 == 0 || lk > 2 * len - 1))
                        c.Report(DiagnosticIds.InputShapeMismatch, $"fft_conv: a bidirectional (centred) filter needs an odd length ≤ 2L − 1 = {2 * len - 1}; got {lk}");
                }
                else if (!causal && k[-1].AsLong is long odd && odd % 2 == 0)
                    c.Report(DiagnosticIds.InputShapeMismatch, $"fft_conv: a bidirectional (centred) filter needs an odd length; got {odd}");
                return new TensorValue(u);
            });

        Fn("causal_conv1d", new[]
            {
                TensorParam("x"), TensorParam("weight"), Opt("bias", optTensor, None), Opt("activation", MixType.String.Optional(), None),
                Opt("state", optTensor, None),
            }, 2,
            "x: [b, d, L]; weight: [d, W] or [d, 1, W]; bias: [d]; state: [b, d, W − 1] -> [b, d, L] (with state: ([b, d, L], [b, d, W − 1]))",
            "depthwise causal convolution (Dao's causal_conv1d_fn); activation none or \"silu\"; with state it returns (y, final_state)", c =>
            {
                if (c.Arg("activation") is StringValue { Value: { } act } && act is not ("silu" or "swish" or "none"))
                    c.Report(DiagnosticIds.OutOfRange, $"causal_conv1d activation must be none, \"silu\" or \"swish\"; got \"{act}\"");
                if (c.Input(0) is not Shape x || !ExpectRank(c, x, 3, "x: [b, d, L]")) return UnknownValue.Instance;
                if (c.Input(1) is not Shape w) return UnknownValue.Instance;
                bool ok = w.Rank == 3 ? Operand(c, w, "weight", "[d, 1, W]", x[1], Dim.Const(1), null) : Operand(c, w, "weight", "[d, W]", x[1], null);
                ok &= Operand(c, Named(c, "bias"), "bias", "[d]", x[1]);
                var taps = w[-1] - Dim.Const(1);
                ok &= Operand(c, Named(c, "state"), "state", "[b, d, W − 1]", x[0], x[1], taps);
                if (!ok) return UnknownValue.Instance;
                return Named(c, "state") is null ? new TensorValue(x) : Pair(x, new Shape(new[] { x[0], x[1], taps }, x.ElementType));
            }, tupleWhenGiven: "state");
    }

    /// <summary>A tensor passed by name, or null when absent or not a known tensor.</summary>
    static Shape? Named(BuiltinCall c, string name) => c.Arg(name) is TensorValue t ? t.Shape : null;

    static TupleValue Pair(Shape a, Shape b) => new(new List<Value> { new TensorValue(a), new TensorValue(b) });

    /// <summary>
    /// Checks one operand against its pattern (null entries match anything); reports both shapes on a mismatch.
    /// Absent operands pass.
    /// </summary>
    static bool Operand(BuiltinCall c, Shape? s, string name, string pattern, params Dim?[] dims)
    {
        if (s is null) return true;
        bool ok = s.Rank == dims.Length;
        for (int i = 0; ok && i < dims.Length; i++) ok = dims[i] is null || Shape.Compatible(s[i], dims[i]!);
        if (ok) return true;
        var expected = "[" + string.Join(", ", dims.Select((d, i) => d?.ToString() ?? Letter(pattern, i))) + "]";
        c.Report(DiagnosticIds.InputShapeMismatch, $"{c.Callable.Name} expects {name} = {pattern} = {expected} but got {s}");
        return false;
    }

    /// <summary>The i-th letter of a pattern such as <c>[b, l, g, n]</c>, for the dims an operand introduces.</summary>
    static string Letter(string pattern, int i)
    {
        var parts = pattern.Trim('[', ']').Split(',');
        return i < parts.Length ? parts[i].Trim() : "?";
    }
}
