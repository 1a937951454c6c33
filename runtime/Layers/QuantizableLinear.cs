using System;
using Mix.Runtime.Quantization;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// The <c>linear</c> layer of generated models: <c>y = x·Wᵀ + b</c> with TorchSharp <see cref="Linear"/>'s keys
/// (<c>weight</c> <c>[out, in]</c>, <c>bias</c> <c>[out]</c>), initialisation and forward, whose weights
/// <see cref="Quantizer"/> can replace in place by int8/int4 codes.
/// </summary>
/// <remarks>
/// Why not TorchSharp's <see cref="Linear"/>: it is sealed, and a generated field typed <c>Linear</c> (so that
/// <c>model.head.weight</c> needs no cast) cannot hold a <see cref="QuantizedLinear"/>; a field typed as a module base
/// would lose the typed access. This layer keeps both: once quantized it holds <see cref="QuantizedLinear"/>'s buffers
/// under its own name (<c>qweight</c>, <c>scales</c>, <c>zeros</c>, <c>bias</c>, <c>input_scale</c>), so a quantized
/// checkpoint has the same keys whichever kind of layer was quantized.
/// </remarks>
public sealed class QuantizableLinear : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] private Parameter? _weight;
    // A Parameter while full precision, a buffer once quantized (QuantizedLinear's bias is not trained).
    [ComponentName(Name = "bias")] private Tensor? _bias;

    // Quantized state (null while full precision); registered as buffers under the QuantizedLinear names.
    [ComponentName(Name = "qweight")] private Tensor? _qweight;
    [ComponentName(Name = "scales")] private Tensor? _scales;
    [ComponentName(Name = "zeros")] private Tensor? _zeros;
    [ComponentName(Name = "input_scale")] private Tensor? _inputScale;

    private Func<Tensor, Tensor>? _route;

    /// <summary>Creates the layer with TorchSharp <see cref="Linear"/>'s initialisation (the same random draws, so a
    /// seeded model is initialised exactly as with <c>nn.Linear</c>).</summary>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="hasBias">Whether there is a bias.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    public QuantizableLinear(long inFeatures, long outFeatures, bool hasBias = true, Device? device = null, ScalarType? dtype = null)
        : base("Linear")
    {
        // TorchSharp's message for a zero size is "uniform_: from is out of bounds" from inside the initialiser; a size
        // computed in .mix (e.g. attention's heads = dim / head_dim with dim < head_dim) reaches here as 0.
        if (inFeatures <= 0 || outFeatures <= 0)
            throw new ArgumentOutOfRangeException(inFeatures <= 0 ? nameof(inFeatures) : nameof(outFeatures),
                $"linear({inFeatures}, {outFeatures}): a linear layer needs at least one input and one output feature");
        in_features = inFeatures;
        out_features = outFeatures;
        using (var init = nn.Linear(inFeatures, outFeatures, hasBias, device, dtype))
        using (torch.no_grad())
        {
            weight = new Parameter(init.weight!.detach().clone());
            if (init.bias is not null) bias = new Parameter(init.bias.detach().clone());
        }
    }

    /// <summary>Input features.</summary>
    public long in_features { get; }

    /// <summary>Output features.</summary>
    public long out_features { get; }

    /// <summary>The weight <c>[out, in]</c>. Setting it (e.g. to tie it to another layer's) registers the new one.</summary>
    /// <exception cref="InvalidOperationException">The layer is quantized (see <see cref="DequantizedWeight"/>).</exception>
    public Parameter weight
    {
        get => _weight ?? throw new InvalidOperationException("this linear layer is quantized: it has no full-precision weight (see DequantizedWeight())");
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            if (IsQuantized) throw new InvalidOperationException("this linear layer is quantized: its weight cannot be set");
            _weight = value;
            ConditionallyRegisterParameter("weight", _weight);
        }
    }

    /// <summary>The bias <c>[out]</c>, or null (a quantized layer keeps it as a buffer: see <see cref="QuantizedBias"/>).</summary>
    public Parameter? bias
    {
        get => IsQuantized ? null : (Parameter?)_bias;
        set
        {
            if (IsQuantized) throw new InvalidOperationException("this linear layer is quantized: its bias cannot be set");
            _bias = value;
            ConditionallyRegisterParameter("bias", value);
        }
    }

    /// <summary>Whether the weights are int8/int4 codes (after <see cref="Quantizer.Quantize"/>).</summary>
    public bool IsQuantized => _qweight is not null;

    /// <summary>The quantized format, or null while full precision.</summary>
    public WeightQuantMode? QuantMode { get; private set; }

    /// <summary>int4 group size along the input (0 for int8 or full precision).</summary>
    public int GroupSize { get; private set; }

    /// <summary>Whether a quantized layer applies an unfolded AWQ input scale.</summary>
    public bool HasInputScale => _inputScale is not null;

    /// <summary>The bias of a quantized layer (a buffer), or null.</summary>
    public Tensor? QuantizedBias => IsQuantized ? _bias : null;

    // The codes and scales as they are (fused kernels that read the int8 format directly).
    internal Tensor? QWeight => _qweight;
    internal Tensor? QScales => _scales;
    internal Tensor? QZeros => _zeros;

    /// <summary>Bytes of the weight storage: the full-precision weight, or the codes, scales and zeros.</summary>
    public long WeightBytes => IsQuantized
        ? Bytes(_qweight) + Bytes(_scales) + Bytes(_zeros)
        : Bytes(_weight);

    static long Bytes(Tensor? t) => t is null ? 0 : t.numel() * t.element_size();

    /// <summary>The weight <c>[out, in]</c> as float32: the parameter, or the codes dequantized (input scale not applied).</summary>
    public Tensor DequantizedWeight() => !IsQuantized
        ? weight.detach().to_type(ScalarType.Float32)
        : QuantizedLinear.Dequantize(QuantMode!.Value, _qweight!, _scales!, _zeros);

    /// <summary><c>x·Wᵀ + b</c>; once quantized, <see cref="QuantizedLinear"/>'s forward (the fused dequantize + GEMV
    /// kernel on CUDA for decode-sized inputs, else the reference path).</summary>
    /// <param name="x">Input <c>[..., in]</c>.</param>
    public override Tensor forward(Tensor x)
    {
        if (_route is not null) return _route(x);
        if (IsQuantized) return QuantizedLinear.Apply(x, QuantMode!.Value, GroupSize, _qweight!, _scales!, _zeros, _bias, _inputScale);
        return nn.functional.linear(x, _weight!, _bias);
    }

    /// <summary>The full-precision forward, whatever the routing (what the AWQ recorder calls).</summary>
    internal Tensor DenseForward(Tensor x) => nn.functional.linear(x, weight, _bias);

    /// <summary>Routes forward through <paramref name="route"/> until called with null (AWQ calibration recording).</summary>
    internal void Route(Func<Tensor, Tensor>? route) => _route = route;

    /// <summary>Whether the forward is rerouted (see <see cref="Route"/>): fused paths that read <see cref="weight"/> decline.</summary>
    internal bool IsRouted => _route is not null;

    /// <summary>Takes over <paramref name="q"/>'s buffers and format and drops the full-precision parameters.</summary>
    internal void UseQuantized(QuantizedLinear q)
    {
        ArgumentNullException.ThrowIfNull(q);
        if (q.InFeatures != in_features || q.OutFeatures != out_features)
            throw new ArgumentException($"a quantized [{q.OutFeatures}, {q.InFeatures}] layer cannot replace a [{out_features}, {in_features}] one", nameof(q));
        var oldWeight = _weight;
        var oldBias = _bias;
        _weight = null;
        _bias = null;
        ConditionallyRegisterParameter("weight", null);
        ConditionallyRegisterParameter("bias", null);
        QuantMode = q.Mode;
        GroupSize = q.GroupSize;
        _qweight = q.QWeight;
        _scales = q.Scales;
        _zeros = q.Zeros;
        _bias = q.Bias;
        _inputScale = q.InputScale;
        ConditionallyRegisterBuffer("qweight", _qweight);
        ConditionallyRegisterBuffer("scales", _scales);
        ConditionallyRegisterBuffer("zeros", _zeros);
        ConditionallyRegisterBuffer("bias", _bias);
        ConditionallyRegisterBuffer("input_scale", _inputScale);
        oldWeight?.Dispose();
        oldBias?.Dispose();
    }
}
