using System;
using System.Linq;
using Mix.Runtime.Builtins;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Std = Mix.Generated.Std;

namespace Mix.Generator.Tests;

/// <summary>
/// The catalog's third part in the standard library against references written here from the official equations:
/// MambaOut's <c>gated_cnn_block</c> (timm <c>GatedConvBlock.forward</c>) for the options its parity fixtures do not
/// cover (expansion 2, kernel 3, half the channels convolved, ReLU), its keys, and its gradients.
/// </summary>
public class Catalog3LibraryTests
{
    static void Redraw(nn.Module module, long seed)
    {
        var g = new torch.Generator((ulong)seed);
        using var _ = torch.no_grad();
        foreach (var (name, p) in module.named_parameters())
        {
            var r = torch.randn(p.shape, generator: g);
            if (name.StartsWith("norm") && name.EndsWith("weight")) p.copy_(r * 0.2 + 1);
            else if (p.dim() >= 2) p.copy_(r / Math.Sqrt(p.numel() / p.shape[0]));
            else p.copy_(r * 0.3);
        }
    }

    [Fact]
    public void Gated_cnn_block_keys_are_timms()
    {
        using var m = new Std.GatedCnnBlock(new Std.GatedCnnBlock.Options(4)); // hidden = int(8/3 · 4) = 10
        var keys = m.state_dict().Select(kv => $"{kv.Key} [{string.Join(",", kv.Value.shape)}]").ToArray();
        Assert.Equal(new[] {
            "norm.weight [4]", "norm.bias [4]", "fc1.weight [20,4]", "fc1.bias [20]",
            "conv.weight [4,1,7,7]", "conv.bias [4]", "fc2.weight [4,10]", "fc2.bias [4]" }, keys.OrderBy(k => Order(k)).ToArray());

        static int Order(string k) => Array.FindIndex(new[] { "norm.w", "norm.b", "fc1.w", "fc1.b", "conv.w", "conv.b", "fc2.w", "fc2.b" }, k.StartsWith);
    }

    [Fact]
    public void Gated_cnn_block_is_the_gate_times_identity_and_conv_parts_plus_the_input()
    {
        using var scope = torch.NewDisposeScope();
        // dim 6, hidden 12, conv channels 3: fc1 → [g (12) | i (9) | c (3)], kernel 3, ReLU gate.
        using var m = new Std.GatedCnnBlock(new Std.GatedCnnBlock.Options(6)
        {
            ExpansionRatio = 2, KernelSize = 3, ConvRatio = 0.5, Act = () => Builtin.ReLU(),
        });
        Redraw(m, 11);
        m.eval();
        var sd = m.state_dict();
        torch.manual_seed(3);
        var x = torch.randn(2, 5, 7, 6);
        var h = F.linear(F.layer_norm(x, new long[] { 6 }, sd["norm.weight"], sd["norm.bias"], 1e-6), sd["fc1.weight"], sd["fc1.bias"]);
        var parts = h.split(new long[] { 12, 9, 3 }, -1);
        var c = F.conv2d(parts[2].permute(0, 3, 1, 2), sd["conv.weight"], sd["conv.bias"], padding: new long[] { 1, 1 }, groups: 3)
            .permute(0, 2, 3, 1);
        var expected = x + F.linear(F.relu(parts[0]) * torch.cat(new[] { parts[1], c }, -1), sd["fc2.weight"], sd["fc2.bias"]);
        var y = m.call(x);
        Assert.Equal(expected.shape, y.shape);
        double err = (expected - y).abs().max().item<float>();
        Assert.True(err <= 1e-5, $"gated_cnn_block: max abs error {err:G4}");
    }

    [Fact]
    public void Gated_cnn_block_trains()
    {
        using var scope = torch.NewDisposeScope();
        using var m = new Std.GatedCnnBlock(new Std.GatedCnnBlock.Options(6) { DropPathRate = 0.1 });
        Redraw(m, 5);
        m.train();
        torch.manual_seed(7);
        var x = torch.randn(2, 5, 5, 6, requires_grad: true);
        m.call(x).square().sum().backward();
        Assert.True(x.grad is not null && x.grad.abs().sum().item<float>() > 0);
        foreach (var (name, p) in m.named_parameters())
            Assert.True(p.grad is not null && p.grad.abs().sum().item<float>() > 0, $"{name} got no gradient");
    }
}
