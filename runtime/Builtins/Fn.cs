using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// The weightless functions of .mix (<c>transpose</c>, <c>tokens</c>, <c>drop_path</c>, …) and the arithmetic helpers
/// generated code uses for configuration values (<c>len</c>, <c>sum</c>, <c>max</c>, ranges).
/// </summary>
public static partial class Fn
{
    // ---- tensor functions -------------------------------------------------------------------------------------

    /// <summary><c>transpose(x, dim0, dim1)</c>.</summary>
    public static Tensor Transpose(Tensor x, long dim0, long dim1) => x.transpose(dim0, dim1);
    /// <summary><c>permute(x, dims)</c>.</summary>
    public static Tensor Permute(Tensor x, long[] dims) => x.permute(dims);
    /// <summary><c>reshape(x, shape)</c>.</summary>
    public static Tensor Reshape(Tensor x, long[] shape) => x.reshape(shape);
    /// <summary><c>flatten(x, start, end)</c>.</summary>
    public static Tensor Flatten(Tensor x, long start = 1, long end = -1) => x.flatten(start, end);
    /// <summary><c>tokens(x)</c>: [B, C, H, W] → [B, H·W, C].</summary>
    public static Tensor Tokens(Tensor x) => x.flatten(2).transpose(1, 2);
    /// <summary><c>image(x, h, w)</c>: [B, h·w, C] → [B, C, h, w].</summary>
    public static Tensor Image(Tensor x, long h, long w) => x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w);
    /// <summary><c>split(x, sizes, dim)</c>.</summary>
    public static Tensor[] Split(Tensor x, long[] sizes, long dim = -1) => x.split(sizes, dim);
    /// <summary><c>chunk(x, chunks, dim)</c>.</summary>
    public static Tensor[] Chunk(Tensor x, long chunks, long dim = -1) => x.chunk(chunks, checked((int)dim));
    /// <summary><c>concat(tensors, dim)</c>.</summary>
    public static Tensor Concat(IList<Tensor> tensors, long dim = -1) => torch.cat(tensors, dim);
    /// <summary><c>mean(x, dims, keepdim)</c>.</summary>
    public static Tensor Mean(Tensor x, long[] dims, bool keepdim = false) => x.mean(dims, keepdim);
    /// <summary><c>softmax(x, dim)</c>.</summary>
    public static Tensor Softmax(Tensor x, long dim = -1) => torch.softmax(x, checked((int)dim));
    /// <summary><c>sqrt(x)</c>.</summary>
    public static Tensor Sqrt(Tensor x) => x.sqrt();

    /// <summary>
    /// <c>patchify(x, patch_length, patch_stride)</c>: [B, L, C] → [B, C, N, P] with N = (L − P)/S + 1, keeping the
    /// last P + S·(N − 1) steps (Hugging Face PatchTSMixer drops the oldest ones).
    /// </summary>
    public static Tensor Patchify(Tensor x, long patchLength, long patchStride)
    {
        var length = x.shape[1];
        var patches = (Math.Max(length, patchLength) - patchLength) / patchStride + 1;
        var start = length - (patchLength + patchStride * (patches - 1));
        return x[.., (int)start.., ..].unfold(1, patchLength, patchStride).transpose(1, 2).contiguous();
    }

    /// <summary><c>matmul(a, b)</c>.</summary>
    public static Tensor Matmul(Tensor a, Tensor b) => torch.matmul(a, b);

    /// <summary><c>drop_path(x, p)</c>: drops whole samples with probability <paramref name="p"/> while training.</summary>
    public static Tensor DropPath(Tensor x, double p, bool training)
    {
        if (p == 0.0 || !training) return x;
        return Mix.Runtime.DropPath.DropSamples(x, p);
    }

    /// <summary><c>dropout(p)(x)</c> applied directly.</summary>
    public static Tensor Dropout(Tensor x, double p, bool training) => nn.functional.dropout(x, p, training);
    /// <summary><c>adaptive_avg_pool()(x)</c> applied directly.</summary>
    public static Tensor AdaptiveAvgPool(Tensor x, bool flatten = false)
    {
        var y = nn.functional.adaptive_avg_pool2d(x, new long[] { 1, 1 });
        return flatten ? y.flatten(1) : y;
    }

    // ---- activations applied directly -------------------------------------------------------------------------

    /// <summary><c>gelu(x)</c> (exact erf form).</summary>
    public static Tensor GELU(Tensor x) => nn.functional.gelu(x);
    /// <summary><c>relu(x)</c>.</summary>
    public static Tensor ReLU(Tensor x) => nn.functional.relu(x);
    /// <summary><c>silu(x)</c>.</summary>
    public static Tensor SiLU(Tensor x) => nn.functional.silu(x);
    /// <summary><c>sigmoid(x)</c>.</summary>
    public static Tensor Sigmoid(Tensor x) => torch.sigmoid(x);
    /// <summary><c>tanh(x)</c>.</summary>
    public static Tensor Tanh(Tensor x) => torch.tanh(x);
    /// <summary><c>softplus(x)</c>.</summary>
    public static Tensor Softplus(Tensor x) => nn.functional.softplus(x);
    /// <summary><c>squared_relu(x)</c>.</summary>
    public static Tensor SquaredReLU(Tensor x) => nn.functional.relu(x).square();
    /// <summary><c>identity(x)</c>.</summary>
    public static Tensor Identity(Tensor x) => x;

    // ---- configuration values ---------------------------------------------------------------------------------

    /// <summary><c>a..b</c> (end exclusive).</summary>
    public static IEnumerable<long> Range(long start, long end)
    {
        for (long i = start; i < end; i++) yield return i;
    }

    /// <summary><c>n x value</c> for values (factories, numbers): n copies of one value.</summary>
    public static T[] Repeat<T>(long count, T value) => Enumerable.Repeat(value, checked((int)count)).ToArray();

    /// <summary><c>len(a)</c>.</summary>
    public static long Len<T>(IReadOnlyList<T> items) => items.Count;
    /// <summary><c>sum(a)</c> of ints.</summary>
    public static long Sum(IEnumerable<long> items) => items.Sum();
    /// <summary><c>sum(a)</c> of floats.</summary>
    public static double Sum(IEnumerable<double> items) => items.Sum();
    /// <summary><c>max(a, b)</c>.</summary>
    public static long Max(long a, long b) => Math.Max(a, b);
    /// <summary><c>max(a, b)</c>.</summary>
    public static double Max(double a, double b) => Math.Max(a, b);
    /// <summary><c>min(a, b)</c>.</summary>
    public static long Min(long a, long b) => Math.Min(a, b);
    /// <summary><c>min(a, b)</c>.</summary>
    public static double Min(double a, double b) => Math.Min(a, b);
    /// <summary><c>int(v)</c>: rounds toward negative infinity.</summary>
    public static long Int(double v) => (long)Math.Floor(v);
    /// <summary><c>ceil(v)</c>.</summary>
    public static long Ceil(double v) => (long)Math.Ceiling(v);
    /// <summary><c>a // b</c> on ints (floor division).</summary>
    public static long FloorDiv(long a, long b) => (long)Math.Floor((double)a / b);
    /// <summary><c>a % b</c> on ints (result has the sign of b).</summary>
    public static long Mod(long a, long b) => ((a % b) + b) % b;
    /// <summary><c>a[i]</c> with negative indices counting from the end.</summary>
    public static T At<T>(IReadOnlyList<T> items, long i) => items[checked((int)(i < 0 ? i + items.Count : i))];
    /// <summary><c>a[start:end]</c> (either end optional, negative from the end).</summary>
    public static T[] Slice<T>(IReadOnlyList<T> items, long? start, long? end)
    {
        long n = items.Count, s = start ?? 0, e = end ?? n;
        if (s < 0) s += n;
        if (e < 0) e += n;
        s = Math.Max(0, Math.Min(s, n));
        e = Math.Max(s, Math.Min(e, n));
        return items.Skip((int)s).Take((int)(e - s)).ToArray();
    }
}
