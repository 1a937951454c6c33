using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

// Tensor math of .mix (elementwise functions with their number forms, reductions, indexing, masks, layout, einsum).
// Parameter names are the .mix names in camelCase: generated code passes optional ones by name.
public static partial class Fn
{
    // ---- elementwise ----------------------------------------------------------------------------------------------

    /// <summary><c>exp(x)</c>.</summary>
    public static Tensor Exp(Tensor x) => x.exp();
    /// <summary><c>exp(v)</c> of a number.</summary>
    public static double Exp(double x) => Math.Exp(x);
    /// <summary><c>log(x)</c>.</summary>
    public static Tensor Log(Tensor x) => x.log();
    /// <summary><c>log(v)</c> of a number.</summary>
    public static double Log(double x) => Math.Log(x);
    /// <summary><c>sqrt(v)</c> of a number.</summary>
    public static double Sqrt(double x) => Math.Sqrt(x);
    /// <summary><c>rsqrt(x)</c> = 1/√x.</summary>
    public static Tensor Rsqrt(Tensor x) => x.rsqrt();
    /// <summary><c>rsqrt(v)</c> of a number.</summary>
    public static double Rsqrt(double x) => 1 / Math.Sqrt(x);
    /// <summary><c>matrix_exp(x)</c>: the matrix exponential of the last two axes.</summary>
    public static Tensor MatrixExp(Tensor x) => torch.linalg.matrix_exp(x);
    /// <summary><c>sin(x)</c>.</summary>
    public static Tensor Sin(Tensor x) => x.sin();
    /// <summary><c>sin(v)</c> of a number.</summary>
    public static double Sin(double x) => Math.Sin(x);
    /// <summary><c>cos(x)</c>.</summary>
    public static Tensor Cos(Tensor x) => x.cos();
    /// <summary><c>cos(v)</c> of a number.</summary>
    public static double Cos(double x) => Math.Cos(x);
    /// <summary><c>abs(x)</c> (the modulus of complex values).</summary>
    public static Tensor Abs(Tensor x) => x.abs();
    /// <summary><c>abs(v)</c> of a number.</summary>
    public static double Abs(double x) => Math.Abs(x);
    /// <summary><c>logsigmoid(x)</c>.</summary>
    public static Tensor Logsigmoid(Tensor x) => nn.functional.logsigmoid(x);
    /// <summary><c>logsigmoid(v)</c> of a number.</summary>
    public static double Logsigmoid(double x) => -(x < -20 ? -x : Math.Log(1 + Math.Exp(-x)));
    /// <summary><c>inv_softplus(x)</c> = x + log(−expm1(−x)), the inverse of softplus (Mamba's dt bias init).</summary>
    public static Tensor InvSoftplus(Tensor x) => x + torch.log(-torch.expm1(-x));
    /// <summary><c>inv_softplus(v)</c> of a number.</summary>
    public static double InvSoftplus(double x) => x + Math.Log(-(Math.Exp(-x) - 1));
    /// <summary><c>pow(x, exponent)</c>.</summary>
    public static Tensor Pow(Tensor x, Tensor exponent) => x.pow(exponent);
    /// <summary><c>pow(x, exponent)</c> with a number exponent.</summary>
    public static Tensor Pow(Tensor x, double exponent) => x.pow(exponent);
    /// <summary><c>pow(base, x)</c> with a number base.</summary>
    public static Tensor Pow(double x, Tensor exponent) => torch.pow(x, exponent);
    /// <summary><c>pow(a, b)</c> of numbers.</summary>
    public static double Pow(double x, double exponent) => Math.Pow(x, exponent);
    /// <summary><c>clamp(x, min, max)</c> (either bound may be absent).</summary>
    public static Tensor Clamp(Tensor x, double? min = null, double? max = null) =>
        min is null && max is null ? x : x.clamp(min is double lo ? (Scalar)lo : null, max is double hi ? (Scalar)hi : null);

    /// <summary><c>softshrink(x, lambd)</c>.</summary>
    public static Tensor Softshrink(Tensor x, double lambd = 0.5) => nn.functional.softshrink(x, lambd);
    /// <summary><c>where(condition, x, y)</c>.</summary>
    public static Tensor Where(Tensor condition, Tensor x, Tensor y) => torch.where(condition, x, y);
    /// <summary><c>where(condition, x, y)</c> with a number y.</summary>
    public static Tensor Where(Tensor condition, Tensor x, double y) => torch.where(condition, x, Constant(y, x.dtype, x.device));
    /// <summary><c>where(condition, x, y)</c> with a number x.</summary>
    public static Tensor Where(Tensor condition, double x, Tensor y) => torch.where(condition, Constant(x, y.dtype, y.device), y);
    /// <summary><c>where(condition, x, y)</c> with numbers: float32, as the checker types it (a C# double would make float64).</summary>
    public static Tensor Where(Tensor condition, double x, double y) =>
        torch.where(condition, Constant(x, ScalarType.Float32, condition.device), Constant(y, ScalarType.Float32, condition.device));

    // A 0-dim tensor filled on its device: torch.tensor(value, device) would copy from host memory and wait for the copy
    // on every call (and a CUDA graph cannot record that copy).
    private static Tensor Constant(double value, ScalarType dtype, Device device) =>
        torch.full(Array.Empty<long>(), value, dtype: dtype, device: device);

    // ---- comparisons (a < b on tensors) ----------------------------------------------------------------------------

    /// <summary><c>a &lt; b</c>.</summary>
    public static Tensor Less(Tensor a, Tensor b) => a.lt(b);
    /// <summary><c>a &lt; b</c>.</summary>
    public static Tensor Less(Tensor a, double b) => a.lt(b);
    /// <summary><c>a &lt; b</c>.</summary>
    public static Tensor Less(double a, Tensor b) => b.gt(a);
    /// <summary><c>a &lt;= b</c>.</summary>
    public static Tensor LessEqual(Tensor a, Tensor b) => a.le(b);
    /// <summary><c>a &lt;= b</c>.</summary>
    public static Tensor LessEqual(Tensor a, double b) => a.le(b);
    /// <summary><c>a &lt;= b</c>.</summary>
    public static Tensor LessEqual(double a, Tensor b) => b.ge(a);
    /// <summary><c>a &gt; b</c>.</summary>
    public static Tensor Greater(Tensor a, Tensor b) => a.gt(b);
    /// <summary><c>a &gt; b</c>.</summary>
    public static Tensor Greater(Tensor a, double b) => a.gt(b);
    /// <summary><c>a &gt; b</c>.</summary>
    public static Tensor Greater(double a, Tensor b) => b.lt(a);
    /// <summary><c>a &gt;= b</c>.</summary>
    public static Tensor GreaterEqual(Tensor a, Tensor b) => a.ge(b);
    /// <summary><c>a &gt;= b</c>.</summary>
    public static Tensor GreaterEqual(Tensor a, double b) => a.ge(b);
    /// <summary><c>a &gt;= b</c>.</summary>
    public static Tensor GreaterEqual(double a, Tensor b) => b.le(a);
    /// <summary><c>a == b</c>.</summary>
    public static Tensor Equal(Tensor a, Tensor b) => a.eq(b);
    /// <summary><c>a == b</c>.</summary>
    public static Tensor Equal(Tensor a, double b) => a.eq(b);
    /// <summary><c>a == b</c>.</summary>
    public static Tensor Equal(double a, Tensor b) => b.eq(a);
    /// <summary><c>a != b</c>.</summary>
    public static Tensor NotEqual(Tensor a, Tensor b) => a.ne(b);
    /// <summary><c>a != b</c>.</summary>
    public static Tensor NotEqual(Tensor a, double b) => a.ne(b);
    /// <summary><c>a != b</c>.</summary>
    public static Tensor NotEqual(double a, Tensor b) => b.ne(a);

    /// <summary><c>not m</c> of a bool tensor.</summary>
    public static Tensor Not(Tensor m) => m.logical_not();
    /// <summary><c>a and b</c> of bool tensors.</summary>
    public static Tensor And(Tensor a, Tensor b) => a.logical_and(b);
    /// <summary><c>a and b</c> with a bool.</summary>
    public static Tensor And(Tensor a, bool b) => b ? a : a.logical_and(a.logical_not());
    /// <summary><c>a and b</c> with a bool.</summary>
    public static Tensor And(bool a, Tensor b) => And(b, a);
    /// <summary><c>a or b</c> of bool tensors.</summary>
    public static Tensor Or(Tensor a, Tensor b) => a.logical_or(b);
    /// <summary><c>a or b</c> with a bool.</summary>
    public static Tensor Or(Tensor a, bool b) => b ? a.logical_or(a.logical_not()) : a;
    /// <summary><c>a or b</c> with a bool.</summary>
    public static Tensor Or(bool a, Tensor b) => Or(b, a);

    // ---- reductions -------------------------------------------------------------------------------------------------

    static long[] AllDims(Tensor x) => Enumerable.Range(0, (int)x.dim()).Select(i => (long)i).ToArray();

    /// <summary><c>sum(x, dims, keepdim)</c> (all axes when dims is null).</summary>
    public static Tensor Sum(Tensor x, long[]? dims = null, bool keepdim = false) => x.sum(dims ?? AllDims(x), keepdim);
    /// <summary><c>amax(x, dims, keepdim)</c>.</summary>
    public static Tensor Amax(Tensor x, long[]? dims = null, bool keepdim = false) => x.amax(dims ?? AllDims(x), keepdim);
    /// <summary><c>max(x, dims, keepdim)</c>: values only, as amax.</summary>
    public static Tensor Max(Tensor x, long[]? dims = null, bool keepdim = false) => x.amax(dims ?? AllDims(x), keepdim);
    /// <summary><c>min(x, dims, keepdim)</c>: values only, as amin.</summary>
    public static Tensor Min(Tensor x, long[]? dims = null, bool keepdim = false) => x.amin(dims ?? AllDims(x), keepdim);
    /// <summary><c>norm(x, dims, keepdim, p)</c>: the p-norm over the axes.</summary>
    // Not torch.linalg.vector_norm: through TorchSharp 0.107 it failed now and then with "Unknown scalar type" inside the
    // binding (a flaky test in CI, about one run in four), so the norm is built from elementwise ops and a sum.
    public static Tensor Norm(Tensor x, long[]? dims = null, bool keepdim = false, double p = 2)
    {
        var axes = dims ?? AllDims(x);
        if (double.IsPositiveInfinity(p)) return x.abs().amax(axes, keepdim);
        if (p == 2) return x.square().sum(axes, keepdim).sqrt();
        if (p == 1) return x.abs().sum(axes, keepdim);
        return x.abs().pow(p).sum(axes, keepdim).pow(1.0 / p);
    }
    /// <summary><c>var(x, dims, keepdim, unbiased)</c>.</summary>
    public static Tensor Var(Tensor x, long[]? dims = null, bool keepdim = false, bool unbiased = true) =>
        x.var(dims ?? AllDims(x), unbiased, keepdim);

    /// <summary><c>log_softmax(x, dim)</c>.</summary>
    public static Tensor LogSoftmax(Tensor x, long dim = -1) => torch.nn.functional.log_softmax(x, dim);
    /// <summary><c>cumsum(x, dim)</c>.</summary>
    public static Tensor Cumsum(Tensor x, long dim = -1) => x.cumsum(dim);

    /// <summary>
    /// <c>segsum(x)</c>: [..., T] → [..., T, T] with out[..., i, j] = x[j+1] + … + x[i] for j ≤ i and −∞ above the
    /// diagonal (exp of it is Mamba-2's decay matrix L). Sums are masked before the cumulative sum, so no large
    /// partial sums are subtracted from each other (the stable form of the reference implementation).
    /// </summary>
    public static Tensor Segsum(Tensor x)
    {
        var t = x.shape[^1];
        var expanded = x.unsqueeze(-1).expand(x.shape.Append(t).ToArray());     // [..., T(i), T(j)] = x[i]
        var strict = torch.ones(t, t, dtype: ScalarType.Bool, device: x.device).tril(-1);
        var masked = expanded.masked_fill(strict.logical_not(), 0.0);
        var sums = masked.cumsum(-2);
        var lower = torch.ones(t, t, dtype: ScalarType.Bool, device: x.device).tril(0);
        return sums.masked_fill(lower.logical_not(), double.NegativeInfinity);
    }

    /// <summary><c>topk(x, k, dim, largest)</c>: (values, long indices).</summary>
    public static Tensor[] Topk(Tensor x, long k, long dim = -1, bool largest = true)
    {
        var (values, indices) = x.topk(checked((int)k), checked((int)dim), largest);
        return new[] { values, indices };
    }

    /// <summary><c>gather(x, dim, index)</c>.</summary>
    public static Tensor Gather(Tensor x, long dim, Tensor index) => x.gather(dim, index);
    /// <summary><c>scatter_add(x, dim, index, src)</c>: a copy of x with src added at index.</summary>
    public static Tensor ScatterAdd(Tensor x, long dim, Tensor index, Tensor src) => x.scatter_add(dim, index, src);

    // ---- constructors and masks -------------------------------------------------------------------------------------

    /// <summary><c>arange(start, end)</c> of ints: a long tensor (<c>arange(n)</c>: 0 … n−1).</summary>
    public static Tensor Arange(long start, long? end = null) =>
        end is long e ? torch.arange(start, e, dtype: ScalarType.Int64) : torch.arange(0, start, dtype: ScalarType.Int64);
    /// <summary><c>arange(start, end)</c> of floats.</summary>
    public static Tensor Arange(double start, double? end = null) =>
        end is double e ? torch.arange(start, e, dtype: ScalarType.Float32) : torch.arange(0.0, start, dtype: ScalarType.Float32);
    /// <summary><c>ones_mask(rows, cols)</c>: all true.</summary>
    public static Tensor OnesMask(long rows, long cols) => torch.ones(rows, cols, dtype: ScalarType.Bool);
    /// <summary><c>tril(x, diagonal)</c>.</summary>
    public static Tensor Tril(Tensor x, long diagonal = 0) => x.tril(diagonal);
    /// <summary><c>triu(x, diagonal)</c>.</summary>
    public static Tensor Triu(Tensor x, long diagonal = 0) => x.triu(diagonal);

    // ---- layout --------------------------------------------------------------------------------------------------

    /// <summary><c>roll(x, shifts, dim)</c>.</summary>
    public static Tensor Roll(Tensor x, long shifts, long dim) => x.roll(new[] { shifts }, new[] { dim });
    /// <summary><c>flip(x, dims)</c>.</summary>
    public static Tensor Flip(Tensor x, long[] dims) => x.flip(dims);
    /// <summary><c>pad(x, pads, value)</c>: PyTorch's order, last axis first.</summary>
    public static Tensor Pad(Tensor x, long[] pads, double value = 0) => nn.functional.pad(x, pads, PaddingModes.Constant, value);
    /// <summary><c>repeat(x, sizes)</c>: tiles (PyTorch's repeat).</summary>
    public static Tensor Repeat(Tensor x, long[] sizes) => x.repeat(sizes);
    /// <summary><c>expand(x, sizes)</c>: −1 keeps an axis.</summary>
    public static Tensor Expand(Tensor x, long[] sizes) => x.expand(sizes);
    /// <summary><c>stack(tensors, dim)</c>.</summary>
    public static Tensor Stack(IList<Tensor> tensors, long dim = 0) => torch.stack(tensors, dim);
    /// <summary><c>select(x, dim, index)</c>: the slice at index, without the axis.</summary>
    public static Tensor Select(Tensor x, long dim, long index) => x.select(dim, index);
    /// <summary><c>narrow(x, dim, start, length)</c>.</summary>
    public static Tensor Narrow(Tensor x, long dim, long start, long length) => x.narrow(dim, start, length);
    /// <summary><c>unsqueeze(x, dim)</c>.</summary>
    public static Tensor Unsqueeze(Tensor x, long dim) => x.unsqueeze(dim);
    /// <summary><c>squeeze(x, dim)</c>.</summary>
    public static Tensor Squeeze(Tensor x, long dim) => x.squeeze(dim);

    // ---- einsum --------------------------------------------------------------------------------------------------

    static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> s_einsumSpecs = new();

    /// <summary>
    /// <c>einsum("b l d, d n -> b l n", a, b)</c>. Axis names may be words separated by spaces; they are mapped to
    /// letters for <c>torch.einsum</c> (a spec without spaces inside a term is PyTorch's, one letter per axis).
    /// </summary>
    public static Tensor Einsum(string spec, Tensor a, Tensor? b = null, Tensor? c = null, Tensor? d = null)
    {
        var operands = new[] { a, b, c, d }.Where(t => t is not null).Select(t => t!).ToArray();
        return torch.einsum(s_einsumSpecs.GetOrAdd(spec, TorchEinsumSpec), operands);
    }

    /// <summary>The spec in torch's one-letter form.</summary>
    public static string TorchEinsumSpec(string spec)
    {
        var arrow = spec.IndexOf("->", StringComparison.Ordinal);
        var terms = spec.Substring(0, arrow).Split(',').Append(spec.Substring(arrow + 2))
            .Select(t => t.Split(new[] { ' ', '\t' }, StringSplitOptions.RemoveEmptyEntries)).ToList();
        if (terms.All(t => t.Length <= 1)) terms = terms.Select(t => t.Length == 0 ? t : t[0].Select(ch => ch.ToString()).ToArray()).ToList();
        var letters = new Dictionary<string, char>();
        const string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        string Term(string[] t) => new string(t.Select(n => letters.TryGetValue(n, out var ch) ? ch : letters[n] = alphabet[letters.Count]).ToArray());
        var inputs = terms.Take(terms.Count - 1).Select(Term).ToList();
        return string.Join(",", inputs) + "->" + Term(terms[^1]);
    }
}
