using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Quantization;

/// <summary>
/// A weight-only quantized linear layer <c>y = (x ⊙ input_scale) · dequant(W)ᵀ + bias</c>. Buffers (state-dict keys):
/// int8: <c>qweight</c> int8 <c>[out, in]</c>, <c>scales</c> float32 <c>[out]</c>;
/// int4: <c>qweight</c> uint8 <c>[out, in/2]</c> (two codes per byte, even input index in the low nibble),
/// <c>scales</c> float32 <c>[out, in/group]</c>, <c>zeros</c> uint8 <c>[out, in/group]</c>;
/// optional <c>bias</c> <c>[out]</c> and <c>input_scale</c> <c>[in]</c> (the inverse AWQ scale when it could not be folded
/// into a preceding layer). The CPU reference path dequantizes to float32 and calls matmul on every forward.
/// </summary>
public sealed class QuantizedLinear : nn.Module<Tensor, Tensor>
{
    private Tensor qweight;
    private Tensor scales;
    private Tensor? zeros;
    private Tensor? bias;
    private Tensor? input_scale;

    private QuantizedLinear(long inFeatures, long outFeatures, WeightQuantMode mode, int groupSize,
        Tensor qweight, Tensor scales, Tensor? zeros, Tensor? bias, Tensor? inputScale) : base(nameof(QuantizedLinear))
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Mode = mode;
        GroupSize = groupSize;
        this.qweight = qweight;
        this.scales = scales;
        this.zeros = zeros;
        this.bias = bias;
        input_scale = inputScale;
        RegisterComponents();
    }

    /// <summary>Input features.</summary>
    public long InFeatures { get; }

    /// <summary>Output features.</summary>
    public long OutFeatures { get; }

    /// <summary>Format.</summary>
    public WeightQuantMode Mode { get; }

    /// <summary>int4 group size along the input dim (0 for int8).</summary>
    public int GroupSize { get; }

    /// <summary>Codes: int8 <c>[out, in]</c> or packed uint8 <c>[out, in/2]</c>.</summary>
    public Tensor QWeight => qweight;

    /// <summary>Scales: float32 <c>[out]</c> or <c>[out, in/group]</c>.</summary>
    public Tensor Scales => scales;

    /// <summary>int4 zero points <c>[out, in/group]</c> (null for int8).</summary>
    public Tensor? Zeros => zeros;

    /// <summary>Bias <c>[out]</c> or null.</summary>
    public Tensor? Bias => bias;

    /// <summary>Unfolded AWQ input scale <c>[in]</c> or null.</summary>
    public Tensor? InputScale => input_scale;

    /// <summary>Whether an unfolded AWQ input scale is applied.</summary>
    public bool HasInputScale => input_scale is not null;

    /// <summary>Quantizes a <see cref="Linear"/> (its weight times the optional per-input-channel AWQ scale).</summary>
    /// <param name="linear">The layer.</param>
    /// <param name="mode">Format.</param>
    /// <param name="groupSize">int4 group size.</param>
    /// <param name="awqScale">Optional AWQ scale s <c>[in]</c>: W·diag(s) is quantized; the caller folds 1/s into the input
    /// producer, or passes <paramref name="keepInputScale"/> to apply it here.</param>
    /// <param name="keepInputScale">Store 1/s as <c>input_scale</c>.</param>
    public static QuantizedLinear FromLinear(Linear linear, WeightQuantMode mode, int groupSize = 128, Tensor? awqScale = null,
        bool keepInputScale = false)
    {
        ArgumentNullException.ThrowIfNull(linear);
        return FromWeight(linear.weight!, linear.bias, mode, groupSize, awqScale, keepInputScale);
    }

    /// <summary>Quantizes a weight <c>[out, in]</c> and bias (of any linear layer) as <see cref="FromLinear"/> does.</summary>
    /// <param name="weight">The weight <c>[out, in]</c>.</param>
    /// <param name="bias">The bias <c>[out]</c> or null (cloned).</param>
    /// <param name="mode">Format.</param>
    /// <param name="groupSize">int4 group size.</param>
    /// <param name="awqScale">Optional AWQ scale s <c>[in]</c> (see <see cref="FromLinear"/>).</param>
    /// <param name="keepInputScale">Store 1/s as <c>input_scale</c>.</param>
    public static QuantizedLinear FromWeight(Tensor weight, Tensor? bias, WeightQuantMode mode, int groupSize = 128, Tensor? awqScale = null,
        bool keepInputScale = false)
    {
        ArgumentNullException.ThrowIfNull(weight);
        using var scope = torch.NewDisposeScope();
        var w = weight.detach().to_type(ScalarType.Float32);
        long o = w.shape[0], i = w.shape[1];
        if (awqScale is not null) w = w * awqScale.to_type(ScalarType.Float32).unsqueeze(0);
        Tensor q, s;
        Tensor? z = null;
        if (mode == WeightQuantMode.Int8PerChannel) (q, s) = WeightQuantizer.QuantizeInt8(w);
        else
        {
            WeightQuantizer.CheckGroup(i, groupSize);
            (q, s, z) = WeightQuantizer.QuantizeInt4(w, groupSize);
        }
        var b = bias?.detach().clone();
        var inv = awqScale is not null && keepInputScale ? (1.0 / awqScale.to_type(ScalarType.Float32)).contiguous() : null;
        var layer = new QuantizedLinear(i, o, mode, mode == WeightQuantMode.Int4Grouped ? groupSize : 0,
            q.DetachFromDisposeScope(), s.DetachFromDisposeScope(), z?.DetachFromDisposeScope(), b?.DetachFromDisposeScope(),
            inv?.DetachFromDisposeScope());
        return layer;
    }

    /// <summary>An empty layer of the given shape (zeros) to load a quantized checkpoint into.</summary>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="mode">Format.</param>
    /// <param name="groupSize">int4 group size.</param>
    /// <param name="hasBias">Whether there is a bias.</param>
    /// <param name="hasInputScale">Whether there is an input scale.</param>
    public static QuantizedLinear Empty(long inFeatures, long outFeatures, WeightQuantMode mode, int groupSize, bool hasBias, bool hasInputScale)
    {
        Tensor q, s;
        Tensor? z = null;
        if (mode == WeightQuantMode.Int8PerChannel)
        {
            q = torch.zeros(new[] { outFeatures, inFeatures }, ScalarType.Int8);
            s = torch.zeros(new[] { outFeatures });
        }
        else
        {
            WeightQuantizer.CheckGroup(inFeatures, groupSize);
            q = torch.zeros(new[] { outFeatures, inFeatures / 2 }, ScalarType.Byte);
            s = torch.zeros(new[] { outFeatures, inFeatures / groupSize });
            z = torch.zeros(new[] { outFeatures, inFeatures / groupSize }, ScalarType.Byte);
        }
        return new QuantizedLinear(inFeatures, outFeatures, mode, mode == WeightQuantMode.Int4Grouped ? groupSize : 0,
            q.DetachFromDisposeScope(), s.DetachFromDisposeScope(), z?.DetachFromDisposeScope(),
            hasBias ? torch.zeros(outFeatures).DetachFromDisposeScope() : null,
            hasInputScale ? torch.ones(inFeatures).DetachFromDisposeScope() : null);
    }

    /// <summary>The dequantized weight <c>[out, in]</c> (float32), input scale not applied.</summary>
    public Tensor DequantizedWeight() => Dequantize(Mode, qweight, scales, zeros);

    /// <summary>Codes of either format back to a float32 weight <c>[out, in]</c>.</summary>
    internal static Tensor Dequantize(WeightQuantMode mode, Tensor qweight, Tensor scales, Tensor? zeros) =>
        mode == WeightQuantMode.Int8PerChannel
            ? WeightQuantizer.DequantizeInt8(qweight, scales)
            : WeightQuantizer.DequantizeInt4(qweight, scales, zeros!);

    /// <summary>Bytes of the quantized weight storage (codes, scales, zeros; bias and input scale excluded).</summary>
    public long WeightBytes => qweight.numel() * (long)qweight.element_size() + scales.numel() * (long)scales.element_size()
        + (zeros is null ? 0 : zeros.numel() * (long)zeros.element_size());

    /// <summary>
    /// On CUDA without autograd, the fused kernels (<see cref="Fused.QuantizedOps.Linear"/>): the tensor-core kernel for
    /// float16/bfloat16 inputs of up to <see cref="Fused.QuantizedGemm.MaxRows"/> rows, the GEMV kernel for at most
    /// <see cref="Fused.QuantizedOps.MaxFusedRows"/> rows otherwise; else the reference path (<see cref="ReferenceForward"/>).
    /// </summary>
    /// <param name="x">Input <c>[..., in]</c>.</param>
    public override Tensor forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Apply(x, Mode, GroupSize, qweight, scales, zeros, bias, input_scale);
    }

    /// <summary>The forward of a quantized linear layer held in any module (see <see cref="QuantizableLinear"/>).</summary>
    internal static Tensor Apply(Tensor x, WeightQuantMode mode, int groupSize, Tensor qweight, Tensor scales, Tensor? zeros,
        Tensor? bias, Tensor? inputScale)
    {
        if (UseFusedKernels && x.device_type == DeviceType.CUDA)
        {
            var y = Fused.QuantizedOps.Linear(x, mode, groupSize, qweight, scales, zeros, bias, inputScale);
            if (y is not null) return y;
        }
        return Reference(x, mode, qweight, scales, zeros, bias, inputScale);
    }

    /// <summary>Whether <see cref="forward"/> may use the fused CUDA kernel (default true; for tests and benchmarks).</summary>
    public static bool UseFusedKernels { get; set; } = true;

    /// <summary>Reference forward: dequantize to float32, matmul, cast back (any device, differentiable in x).</summary>
    /// <param name="x">Input <c>[..., in]</c>.</param>
    public Tensor ReferenceForward(Tensor x) => Reference(x, Mode, qweight, scales, zeros, bias, input_scale);

    private static Tensor Reference(Tensor x, WeightQuantMode mode, Tensor qweight, Tensor scales, Tensor? zeros, Tensor? bias, Tensor? inputScale)
    {
        using var scope = torch.NewDisposeScope();
        var w = Dequantize(mode, qweight, scales, zeros);
        var h = x.to_type(ScalarType.Float32);
        if (inputScale is not null) h = h * inputScale;
        var y = torch.matmul(h, w.t());
        if (bias is not null) y = y + bias.to_type(ScalarType.Float32);
        return y.to_type(x.dtype).MoveToOuterDisposeScope();
    }
}
