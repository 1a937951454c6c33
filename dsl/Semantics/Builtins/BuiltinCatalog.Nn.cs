using System.Linq;
using Mix.Dsl.Diagnostics;

namespace Mix.Dsl.Semantics;

public static partial class BuiltinCatalog
{
    /// <summary>
    /// Weightless neural-network functions (PyTorch's <c>torch.nn.functional</c> names): what the standard library's
    /// pooling and attention mixers are written with.
    /// </summary>
    static void RegisterNn()
    {
        Fn("avg_pool2d", new[]
            {
                TensorParam(), Req("kernel_size", MixType.Int), Opt("stride", MixType.Int.Optional(), None),
                Opt("padding", MixType.Int, I(0)), Opt("count_include_pad", MixType.Bool, B(true)),
            }, 1,
            "[B, C, H, W] -> [B, C, (H + 2·padding − kernel_size)/stride + 1, (W + ...)/stride + 1]",
            "average pooling over k×k windows (stride = kernel_size unless given; count_include_pad = false averages only real positions)", c => Pool2d(c, "avg_pool2d"));

        // iFormer's high-frequency branch max-pools; no composition of the other primitives is a max over windows.
        Fn("max_pool2d", new[]
            {
                TensorParam(), Req("kernel_size", MixType.Int), Opt("stride", MixType.Int.Optional(), None),
                Opt("padding", MixType.Int, I(0)),
            }, 1,
            "[B, C, H, W] -> [B, C, (H + 2·padding − kernel_size)/stride + 1, (W + ...)/stride + 1]",
            "max pooling over k×k windows (stride = kernel_size unless given; padding counts as −∞)", c => Pool2d(c, "max_pool2d"));

        // iFormer resizes its positional embeddings to the stage's map (bilinear, as the official F.interpolate call).
        Fn("interpolate", new[]
            {
                TensorParam(), Req("size", MixType.Int.Array()), Opt("mode", MixType.String, new StringValue("bilinear")),
                Opt("align_corners", MixType.Bool, B(false)),
            }, 1,
            "[B, C, h, w] -> [B, C, size[0], size[1]]",
            "resizes the two spatial axes (mode \"nearest\", \"bilinear\" or \"bicubic\"; align_corners as PyTorch's, ignored by \"nearest\")", c =>
            {
                if (c.Arg("mode") is StringValue { Value: string mode } && mode is not ("nearest" or "bilinear" or "bicubic"))
                {
                    c.Report(DiagnosticIds.OutOfRange, $"interpolate mode must be \"nearest\", \"bilinear\" or \"bicubic\"; got \"{mode}\"");
                    return UnknownValue.Instance;
                }
                if (c.Input() is not Shape s || !ExpectRank(c, s, 4, "[B, C, h, w]") || c.Arg("size").AsItems() is not { } items) return UnknownValue.Instance;
                if (items.Count != 2)
                {
                    c.Report(DiagnosticIds.OutOfRange, $"interpolate size must have two entries (height, width); got {items.Count}");
                    return UnknownValue.Instance;
                }
                var dims = items.Select(v => v is IntValue i ? i.Dim : Dim.Symbol("?")).ToList();
                foreach (var d in dims)
                    if (d.AsLong is long n && n <= 0)
                    {
                        c.Report(DiagnosticIds.OutOfRange, $"interpolate sizes must be positive; got {n}");
                        return UnknownValue.Instance;
                    }
                return new TensorValue(s.With(2, dims[0]).With(3, dims[1]));
            });

        Fn("scaled_dot_product_attention", new[]
            {
                TensorParam("q"), TensorParam("k"), TensorParam("v"), Opt("dropout_p", MixType.Float, F(0.0)),
                Opt("causal", MixType.Bool, B(false)),
            }, 3,
            "[..., N, d], [..., M, d], [..., M, e] -> [..., N, e]",
            "softmax(q kᵀ / √d) v (dropout_p on the weights while training; causal: query i sees keys ≤ i)", c =>
            {
                CheckProbability(c, "dropout_p");
                if (c.Input(0) is not Shape q || c.Input(1) is not Shape k || c.Input(2) is not Shape v) return UnknownValue.Instance;
                if (!ExpectMinRank(c, q, 2, "[..., N, d]") || !ExpectMinRank(c, k, 2, "[..., M, d]") || !ExpectMinRank(c, v, 2, "[..., M, e]"))
                    return UnknownValue.Instance;
                if (q.Rank != k.Rank || k.Rank != v.Rank)
                {
                    c.Report(DiagnosticIds.ShapeMismatch, $"scaled_dot_product_attention needs q, k and v of one rank; got {q}, {k} and {v}");
                    return UnknownValue.Instance;
                }
                for (int a = 0; a < q.Rank - 2; a++)
                    if (!Shape.Compatible(q[a], k[a]) || !Shape.Compatible(k[a], v[a]))
                    {
                        c.Report(DiagnosticIds.ShapeMismatch, $"scaled_dot_product_attention: q {q}, k {k} and v {v} differ on axis {a}");
                        return UnknownValue.Instance;
                    }
                if (!Shape.Compatible(q[-1], k[-1]))
                {
                    c.Report(DiagnosticIds.ShapeMismatch, $"scaled_dot_product_attention: q {q} and k {k} differ in the feature size ({q[-1]} and {k[-1]})");
                    return UnknownValue.Instance;
                }
                if (!Shape.Compatible(k[-2], v[-2]))
                {
                    c.Report(DiagnosticIds.ShapeMismatch, $"scaled_dot_product_attention: k {k} and v {v} differ in the number of keys ({k[-2]} and {v[-2]})");
                    return UnknownValue.Instance;
                }
                return new TensorValue(q.With(-1, v[-1]));
            });
    }

    /// <summary>The shape rule of avg_pool2d and max_pool2d: a k×k window, stride (= k unless given) and padding ≤ k/2.</summary>
    static Value Pool2d(BuiltinCall c, string name)
    {
        if (c.Input() is not Shape s || !ExpectRank(c, s, 4, "[B, C, H, W]")) return UnknownValue.Instance;
        CheckPositive(c, "kernel_size");
        var k = c.Dim("kernel_size");
        var p = c.Dim("padding");
        if (c.Long("padding") is long pad && c.Long("kernel_size") is long kernel && (pad < 0 || 2 * pad > kernel))
        {
            c.Report(DiagnosticIds.OutOfRange, $"{name} padding must be between 0 and kernel_size/2 = {kernel / 2}; got {pad}");
            return UnknownValue.Instance;
        }
        var stride = c.IsNone("stride") ? c.Long("kernel_size") : c.Long("stride");
        if (stride is not long st) return new TensorValue(s.With(2, Dim.Symbol("?")).With(3, Dim.Symbol("?")));
        if (st <= 0) { c.Report(DiagnosticIds.OutOfRange, $"stride must be positive; got {st}"); return UnknownValue.Instance; }
        var result = s;
        for (int a = 2; a < 4; a++)
        {
            var outDim = (s[a] + p * Dim.Const(2) - k).FloorDivideBy(st)! + Dim.Const(1);
            if (outDim.AsLong is long o && o <= 0)
            {
                c.Report(DiagnosticIds.InputShapeMismatch, $"{name} with kernel {k} and padding {p} needs axis {a} ≥ {k}, got {s}");
                return UnknownValue.Instance;
            }
            result = result.With(a, outDim);
        }
        return new TensorValue(result);
    }
}
