using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix;

/// <summary>
/// FFNet's re-parameterisation (ysj9909/FFNet: every module with a <c>fuse()</c> replaced by the conv it returns, as
/// export_model.py's <c>replace_batchnorm</c> does) on a state dict: a training-form <c>ffnet</c> (<c>deploy = false</c>)
/// becomes the weights of the same configuration built with <c>deploy = true</c>, whose outputs equal the training
/// form's in eval mode (BatchNorm with its running statistics). Three patterns, by the official module names:
/// <list type="bullet">
/// <item>Conv2d_BN (<c>P.c.weight</c>, <c>P.bn.*</c>): the BatchNorm folded into the conv, <c>P.weight</c> and <c>P.bias</c>.</item>
/// <item>RepVGGDW (<c>Q.conv.*</c> and <c>Q.conv1.*</c>, two Conv2d_BN): both folded, the small kernel zero-padded to
/// the large one's size and added: <c>Q.weight</c>, <c>Q.bias</c>.</item>
/// <item>Conv2d_BN_skip (PatchMerging's <c>proj.1</c>: <c>proj.1.conv.bn.*</c> before the 1×1 <c>proj.1.conv.c</c>, plus
/// the input): the BatchNorm folded into the conv's input side and the identity added to its weight.</item>
/// </list>
/// Every other entry (plain convs, the MLP, layer scales, the final BatchNorm, the head) is copied. The fused
/// BatchNorms' <c>num_batches_tracked</c> go, as in the official deploy model.
/// </summary>
public static class FfnetReparameterization
{
    /// <summary>PyTorch's BatchNorm2d default, which every FFNet BatchNorm uses.</summary>
    public const double BatchNormEps = 1e-5;

    /// <summary>The deploy-form state dict of a training-form FFNet state dict (new tensors; the input is not changed).</summary>
    public static Dictionary<string, Tensor> DeployStateDict(IReadOnlyDictionary<string, Tensor> train, double eps = BatchNormEps)
    {
        ArgumentNullException.ThrowIfNull(train);
        using var _ = torch.no_grad();
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var consumed = new HashSet<string>(StringComparer.Ordinal);
        Tensor Take(string key)
        {
            if (!train.TryGetValue(key, out var t)) throw new ArgumentException($"FFNet state dict: '{key}' is missing", nameof(train));
            consumed.Add(key);
            return t;
        }
        void TakeBn(string bn) { foreach (var s in new[] { "weight", "bias", "running_mean", "running_var", "num_batches_tracked" }) if (train.ContainsKey($"{bn}.{s}")) Take($"{bn}.{s}"); }
        (Tensor W, Tensor B) ConvBn(string p)
        {
            var (scale, shift) = BnAffine(train, p + ".bn", eps);
            var w = Take(p + ".c.weight") * scale.reshape(-1, 1, 1, 1);
            TakeBn(p + ".bn");
            return (w, shift);
        }

        // Conv2d_BN_skip first: its inner nn.Sequential has the keys of a Conv2d_BN in the other order (bn before c).
        foreach (var p in Prefixes(train, ".conv.bn.weight").Where(p => p.EndsWith(".proj.1", StringComparison.Ordinal)))
        {
            var (scale, shift) = BnAffine(train, p + ".conv.bn", eps);
            var c = Take(p + ".conv.c.weight");                                  // [out, in, 1, 1]
            TakeBn(p + ".conv.bn");
            var w = c * scale.reshape(1, -1, 1, 1) + torch.eye(c.shape[0], c.shape[1], dtype: c.dtype, device: c.device).reshape(c.shape[0], c.shape[1], 1, 1);
            result[p + ".weight"] = w;
            result[p + ".bias"] = torch.matmul(c.reshape(c.shape[0], c.shape[1]), shift);
        }
        foreach (var q in Prefixes(train, ".conv1.c.weight").Where(q => train.ContainsKey(q + ".conv.c.weight") && !consumed.Contains(q + ".conv.c.weight")))
        {
            var (w, b) = ConvBn(q + ".conv");
            var (w1, b1) = ConvBn(q + ".conv1");
            long ph = (w.shape[2] - w1.shape[2]) / 2, pw = (w.shape[3] - w1.shape[3]) / 2;
            result[q + ".weight"] = w + nn.functional.pad(w1, new[] { pw, pw, ph, ph });
            result[q + ".bias"] = b + b1;
        }
        foreach (var p in Prefixes(train, ".c.weight").Where(p => train.ContainsKey(p + ".bn.weight") && !consumed.Contains(p + ".c.weight")))
        {
            var (w, b) = ConvBn(p);
            result[p + ".weight"] = w;
            result[p + ".bias"] = b;
        }
        foreach (var (key, value) in train)
            if (!consumed.Contains(key)) result[key] = value.clone();
        return result;
    }

    /// <summary>
    /// Loads the deploy-form weights of <paramref name="train"/> (a training-form FFNet) into <paramref name="deploy"/>
    /// (the same configuration with <c>deploy = true</c>), strictly: every key of the deploy model is filled, and the
    /// fused state dict has no key the deploy model lacks.
    /// </summary>
    public static void LoadDeployForm(nn.Module train, nn.Module deploy, double eps = BatchNormEps)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(deploy);
        var fused = DeployStateDict(train.state_dict(), eps);
        var target = deploy.state_dict();
        var missing = target.Keys.Where(k => !fused.ContainsKey(k)).ToList();
        var unexpected = fused.Keys.Where(k => !target.ContainsKey(k)).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
            throw new ArgumentException($"the fused FFNet state dict does not fit the deploy model: missing [{string.Join(", ", missing)}], " +
                $"unexpected [{string.Join(", ", unexpected)}] (is the deploy model the same configuration with deploy = true?)");
        using var _ = torch.no_grad();
        foreach (var (key, value) in target)
        {
            var source = fused[key];
            if (!source.shape.SequenceEqual(value.shape))
                throw new ArgumentException($"fused FFNet weight '{key}' is [{string.Join(", ", source.shape)}], the deploy model's [{string.Join(", ", value.shape)}]");
            value.copy_(source);
        }
        foreach (var t in fused.Values) t.Dispose();
    }

    /// <summary>BatchNorm in eval as y = scale · x + shift.</summary>
    static (Tensor Scale, Tensor Shift) BnAffine(IReadOnlyDictionary<string, Tensor> sd, string bn, double eps)
    {
        var scale = sd[bn + ".weight"] / (sd[bn + ".running_var"] + eps).sqrt();
        return (scale, sd[bn + ".bias"] - sd[bn + ".running_mean"] * scale);
    }

    static List<string> Prefixes(IReadOnlyDictionary<string, Tensor> sd, string suffix) =>
        sd.Keys.Where(k => k.EndsWith(suffix, StringComparison.Ordinal)).Select(k => k.Substring(0, k.Length - suffix.Length))
            .OrderBy(k => k, StringComparer.Ordinal).ToList();
}
