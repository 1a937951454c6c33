using System;
using System.IO;
using System.Linq;
using Mix.Runtime.Caches;
using Mix.Runtime.Quantization;
using Mix.Runtime.Tests.Caches;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static Mix.Runtime.Tests.Caches.CacheTestUtil;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Quantization;

public class WeightQuantizationTests
{
    [Fact]
    public void NibblePackingRoundTrips()
    {
        using var codes = torch.tensor(Enumerable.Range(0, 64).Select(i => (i * 7) % 16).ToArray()).reshape(4, 16);
        using var packed = WeightQuantizer.PackNibbles(codes);
        Assert.Equal(new long[] { 4, 8 }, packed.shape);
        Assert.Equal(ScalarType.Byte, packed.dtype);
        using var back = WeightQuantizer.UnpackNibbles(packed);
        Assert.True(back.eq(codes.to_type(ScalarType.Int32)).all().item<bool>());
        Assert.Equal((byte)(0 + 16 * 7), packed[0, 0].item<byte>());   // low nibble = even index
    }

    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    [InlineData(128)]
    public void Int4ErrorIsAtMostHalfAStep(int group)
    {
        using var w = TestUtil.Det(new long[] { 24, 256 }, salt: 0.4);
        var (p, s, z) = WeightQuantizer.QuantizeInt4(w, group);
        using (p) using (s) using (z)
        {
            Assert.Equal(new long[] { 24, 128 }, p.shape);
            Assert.Equal(new long[] { 24, 256 / group }, s.shape);
            using var d = WeightQuantizer.DequantizeInt4(p, s, z);
            using var err = (d - w).abs().reshape(24, 256 / group, group).amax(new long[] { 2 });
            Assert.True(err.le(s * 0.5 + 1e-6).all().item<bool>());
        }
    }

    [Fact]
    public void Int8ErrorIsAtMostHalfAStep()
    {
        using var w = TestUtil.Det(new long[] { 16, 40 }, salt: 0.9, scale: 3);
        var (q, s) = WeightQuantizer.QuantizeInt8(w);
        using (q) using (s)
        {
            Assert.Equal(ScalarType.Int8, q.dtype);
            using var d = WeightQuantizer.DequantizeInt8(q, s);
            using var err = (d - w).abs().amax(new long[] { 1 });
            Assert.True(err.le(s * 0.5 + 1e-6).all().item<bool>());
        }
    }

    [Theory]
    [InlineData(WeightQuantMode.Int8PerChannel)]
    [InlineData(WeightQuantMode.Int4Grouped)]
    public void QuantizedLinearIsDequantizeThenMatmul(WeightQuantMode mode)
    {
        using var noGrad = torch.no_grad();
        using var lin = nn.Linear(64, 24, hasBias: true);
        using var q = QuantizedLinear.FromLinear(lin, mode, 32);
        using var x = TestUtil.Det(new long[] { 3, 5, 64 }, salt: 0.1);
        using var w = q.DequantizedWeight();
        using var expected = torch.matmul(x, w.t()) + lin.bias!;
        using var y = q.forward(x);
        Assert.True(RelErr(y, expected) <= 1e-6);
        var keys = q.state_dict().Keys.ToHashSet();
        Assert.Contains("qweight", keys);
        Assert.Contains("scales", keys);
        Assert.Equal(mode == WeightQuantMode.Int4Grouped, keys.Contains("zeros"));
    }

    [Theory]
    [InlineData("mamba", WeightQuantMode.Int8PerChannel, 128, 0.02)]
    [InlineData("mamba", WeightQuantMode.Int4Grouped, 32, 0.15)]
    [InlineData("attention", WeightQuantMode.Int8PerChannel, 128, 0.02)]
    [InlineData("attention", WeightQuantMode.Int4Grouped, 32, 0.15)]
    public void QuantizedLogitsStayCloseToFullPrecision(string kind, WeightQuantMode mode, int group, double bound)
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build(kind);
        using var ids = RandomIds(2, 16, 40, 5);
        using var before = model.forward(ids);
        var aLogBefore = kind == "mamba" ? model.state_dict()["layers.0.mixer.A_log"].clone() : null;
        var report = Quantizer.Quantize(model, new QuantizationOptions { Mode = mode, GroupSize = group });
        using var after = model.forward(ids);
        double err = RelNorm(after, before);
        Record($"weight quant {kind} {mode} g{group}: logits rel L2 err {err:F4} (bound {bound}); bytes {report.BytesBefore} -> {report.BytesAfter}");
        Assert.True(err <= bound, $"rel err {err}");
        Assert.True(report.BytesAfter < report.BytesBefore / (mode == WeightQuantMode.Int8PerChannel ? 3 : 5));
        if (kind == "mamba")
        {
            Assert.Contains("layers.0.mixer.in_proj", report.Quantized);
            Assert.Contains("layers.1.mixer.out_proj", report.Quantized);
            Assert.Contains(report.Skipped, s => s.name == "layers.0.mixer.dt_proj");
            Assert.Contains(report.Skipped, s => s.name == "lm_head");
            var sd = model.state_dict();
            Assert.True(sd["layers.0.mixer.A_log"].eq(aLogBefore!).all().item<bool>());
            Assert.Equal(ScalarType.Float32, sd["layers.0.mixer.dt_proj.weight"].dtype);
            aLogBefore!.Dispose();
        }
        // the cache path works on the quantized model
        var lm = (ICausalLM)model;
        using var cache = lm.CreateCache(2);
        using var chunked = RunChunked(ids, new[] { 5, 1, 10 }, p => lm.Forward(p, cache));
        Assert.True(RelErr(chunked, after) <= 1e-5);
    }

    /// <summary>A single linear layer; inputs have a few outlier channels (large magnitudes), as in LLM activations.</summary>
    private sealed class OneLayer : nn.Module<Tensor, Tensor>
    {
        private nn.Module<Tensor, Tensor> fc;

        public OneLayer(Linear l) : base(nameof(OneLayer))
        {
            fc = l;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => fc.forward(x);
    }

    private static Tensor OutlierInputs(int seed, int rows)
    {
        var gen = new Random(seed);
        var data = new float[rows * 256];
        for (int i = 0; i < data.Length; i++)
        {
            int c = i % 256;
            double g = Math.Sqrt(-2 * Math.Log(1 - gen.NextDouble())) * Math.Cos(2 * Math.PI * gen.NextDouble());
            data[i] = (float)(g * (c % 37 == 5 ? 25.0 : 1.0));
        }
        return torch.tensor(data).reshape(rows, 256);
    }

    [Theory]
    [InlineData(128)]
    [InlineData(64)]
    public void AwqReducesInt4ErrorOnOutlierChannels(int group)
    {
        using var noGrad = torch.no_grad();
        // Seeded: with an unseeded layer the AWQ gain was 20-40 % and fell just short of the 20 % bound once in CI.
        torch.manual_seed(7);
        using var lin = nn.Linear(256, 64, hasBias: false);
        using var plainNet = new OneLayer(lin);
        using var awqNet = new OneLayer(nn.Linear(256, 64, hasBias: false));
        awqNet.load_state_dict(plainNet.state_dict());
        using var calib = OutlierInputs(1, 512);
        using var test = OutlierInputs(2, 512);
        using var expected = lin.forward(test);
        Quantizer.Quantize(plainNet, new QuantizationOptions { GroupSize = group });
        var report = Quantizer.Quantize(awqNet, new QuantizationOptions { GroupSize = group, CalibrationInputs = new[] { calib } });
        using var yPlain = plainNet.forward(test);
        using var yAwq = awqNet.forward(test);
        double ePlain = RelNorm(yPlain, expected), eAwq = RelNorm(yAwq, expected);
        Record($"AWQ int4 g{group} outlier data: plain rel err {ePlain:F4}, AWQ {eAwq:F4} (alpha {report.AwqAlpha["fc"]})");
        Assert.True(eAwq < 0.8 * ePlain, $"plain {ePlain}, awq {eAwq}");
    }

    [Fact]
    public void AwqOnMambaFoldsIntoNormAndDoesNotHurt()
    {
        using var noGrad = torch.no_grad();
        using var model = (HybridLM)CacheInvariantTests.Build("mamba");
        using var plain = (HybridLM)CacheInvariantTests.Build("mamba");
        plain.load_state_dict(model.state_dict());
        using var calib = RandomIds(4, 32, 40, 77);
        using var ids = RandomIds(2, 16, 40, 5);
        using var before = model.forward(ids);
        Quantizer.Quantize(plain, new QuantizationOptions { GroupSize = 32 });
        var report = Quantizer.Quantize(model, new QuantizationOptions { GroupSize = 32, CalibrationInputs = new[] { calib } });
        Assert.Contains("layers.0.norm.weight", report.Folded.Keys);
        using var yAwq = model.forward(ids);
        using var yPlain = plain.forward(ids);
        double eAwq = RelNorm(yAwq, before), ePlain = RelNorm(yPlain, before);
        Record($"AWQ int4 g32 mamba LM: plain logits err {ePlain:F4}, AWQ {eAwq:F4}");
        Assert.True(eAwq <= ePlain * 1.25, $"plain {ePlain}, awq {eAwq}");
    }

    [Theory]
    [InlineData(WeightQuantMode.Int4Grouped, true)]
    [InlineData(WeightQuantMode.Int8PerChannel, false)]
    public void SaveLoadRoundTrip(WeightQuantMode mode, bool awq)
    {
        using var noGrad = torch.no_grad();
        using var model = (HybridLM)CacheInvariantTests.Build("mamba");
        using var calib = RandomIds(2, 16, 40, 3);
        Quantizer.Quantize(model, new QuantizationOptions { Mode = mode, GroupSize = 32, CalibrationInputs = awq ? new[] { calib } : null });
        using var ids = RandomIds(1, 9, 40, 4);
        using var expected = model.forward(ids);
        var path = Path.Combine(Path.GetTempPath(), $"mix-quant-{Guid.NewGuid():N}.safetensors");
        try
        {
            QuantizedCheckpoint.Save(model, path);
            using var fresh = (HybridLM)CacheInvariantTests.Build("mamba");
            QuantizedCheckpoint.Load(fresh, path);
            using var got = fresh.forward(ids);
            Assert.True(got.eq(expected).all().item<bool>());
            var sd = fresh.state_dict();
            Assert.Equal(mode == WeightQuantMode.Int4Grouped ? ScalarType.Byte : ScalarType.Int8, sd["layers.0.mixer.in_proj.qweight"].dtype);
            if (awq) Assert.Contains("layers.0.mixer.x_proj.input_scale", sd.Keys);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
