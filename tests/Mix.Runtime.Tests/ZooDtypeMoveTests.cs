using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// <c>model.to(dtype)</c> (and <c>.cuda()</c>) replaces every parameter and buffer tensor of every module and disposes
/// the old ones, so a module that reads a weight through anything but its own registration (an alias model's aliased
/// module, a layer tied to another's parameter) must follow. Every registered zoo model is built, moved to float64,
/// run, moved back to float32 and run again, on the CPU: the GPU test's <c>.to(device).to(bf16)</c> takes the same
/// path. The case list is the registry's (<see cref="ZooGpuCases"/>), so a new model is covered when it is registered.
/// </summary>
public class ZooDtypeMoveTests
{
    public static TheoryData<string> Names() => new(Models.List());

    [Theory]
    [MemberData(nameof(Names))]
    public void The_model_runs_after_moving_to_float64_and_back(string name)
    {
        torch.manual_seed(7);
        var (model, input) = ZooGpuCases.Build(name);
        using var _model = model;
        model.eval();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();   // the activations of three forwards of a 224² model add up
        var sharing = Sharing(model);
        var y32 = model.call(input).detach().clone();

        model.to(ScalarType.Float64);
        AssertMoved(model, name, ScalarType.Float64, sharing);
        var y64 = model.call(input.is_floating_point() ? input.to_type(ScalarType.Float64) : input);
        Assert.Equal(ScalarType.Float64, y64.dtype);
        // float32 and float64 compute the same function of the same (exactly widened) weights.
        double err64 = RelErr(y64, y32);
        Assert.True(err64 <= 1e-3, $"{name}: float64 output differs from float32 by {err64:g3} (relative)");

        model.to(ScalarType.Float32);
        AssertMoved(model, name, ScalarType.Float32, sharing);
        var back = model.call(input);
        // float32 → float64 → float32 is exact, so the second float32 run is the first one.
        double errBack = RelErr(back, y32);
        Assert.True(errBack <= 1e-6, $"{name}: float32 output after the round trip differs by {errBack:g3} (relative)");
    }

    // The zoo models whose forward takes spectra (rfft/irfft of lmu_fft_cell): libtorch has no bfloat16 FFT, so these
    // ran into "Unsupported dtype BFloat16" after .to(bfloat16) until the FFT built-ins computed in float32.
    [Theory]
    [InlineData("lmu_former")]
    public void A_model_with_spectra_runs_in_bfloat16(string name)
    {
        torch.manual_seed(7);
        var (model, input) = ZooGpuCases.Build(name);
        using var _model = model;
        model.eval();
        using var _ = torch.no_grad();
        var y32 = model.call(input).detach().clone();
        model.to(ScalarType.BFloat16);
        var y16 = model.call(input.is_floating_point() ? input.to_type(ScalarType.BFloat16) : input);
        Assert.Equal(ScalarType.BFloat16, y16.dtype);
        double err = RelErr(y16, y32);
        Assert.True(err <= 5e-2, $"{name}: bfloat16 output differs from float32 by {err:g3} (relative)");
    }

    /// <summary>Every floating parameter and buffer is live and of <paramref name="dtype"/>, and the keys that shared
    /// one tensor before (tied weights) still share one.</summary>
    private static void AssertMoved(nn.Module model, string name, ScalarType dtype, Dictionary<string, int> sharing)
    {
        var tensors = Tensors(model);
        Assert.Equal(sharing.Keys.OrderBy(k => k, StringComparer.Ordinal), tensors.Select(t => t.Key).OrderBy(k => k, StringComparer.Ordinal));
        foreach (var (key, t) in tensors)
        {
            Assert.False(t.IsInvalid, $"{name}: {key} is a disposed tensor after .to({dtype})");
            if (t.is_floating_point()) Assert.True(t.dtype == dtype, $"{name}: {key} is {t.dtype} after .to({dtype})");
        }
        var now = Sharing(model);
        foreach (var (key, group) in sharing)
        {
            var together = sharing.Where(p => p.Value == group).Select(p => p.Key).ToList();
            Assert.True(together.All(k => now[k] == now[key]),
                $"{name}: {string.Join(", ", together)} shared one tensor before .to({dtype}) but not after");
        }
    }

    private static List<KeyValuePair<string, Tensor>> Tensors(nn.Module model) =>
        model.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter))
            .Concat(model.named_buffers().Select(b => new KeyValuePair<string, Tensor>(b.name, b.buffer))).ToList();

    /// <summary>Each key's group: keys whose tensors share one storage get the same number.</summary>
    private static Dictionary<string, int> Sharing(nn.Module model)
    {
        var groups = new Dictionary<IntPtr, int>();
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (key, t) in Tensors(model))
        {
            var ptr = t.numel() == 0 ? (IntPtr)(-1 - result.Count) : Storage(t);
            if (!groups.TryGetValue(ptr, out var g)) groups[ptr] = g = groups.Count;
            result[key] = g;
        }
        return result;
    }

    private static IntPtr Storage(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => t.storage<float>().data_ptr(),
        ScalarType.Float64 => t.storage<double>().data_ptr(),
        ScalarType.Int64 => t.storage<long>().data_ptr(),
        ScalarType.Int32 => t.storage<int>().data_ptr(),
        ScalarType.Bool => t.storage<bool>().data_ptr(),
        ScalarType.ComplexFloat32 or ScalarType.ComplexFloat64 => Storage(view_as_real(t)),
        _ => throw new NotSupportedException($"a {t.dtype} weight: add its storage type here"),
    };

    private static double RelErr(Tensor a, Tensor b)
    {
        var x = a.detach().to_type(ScalarType.Float64);
        var y = b.detach().to_type(ScalarType.Float64);
        return (x - y).abs().max().item<double>() / Math.Max(y.abs().max().item<double>(), 1e-12);
    }
}
