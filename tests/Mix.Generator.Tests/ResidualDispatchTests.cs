using System;
using System.Linq;
using Microsoft.CodeAnalysis;
using Mix.Generated.Models;
using Mix.Runtime;
using Mix.Runtime.Builtins;
using Mix.Runtime.Fused;
using Mix.Runtime.Cuda;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// Residual sub-blocks in generated code: the generator turns <c>x + [ls](drop_path(branch(norm(x))))</c> (a res scale
/// on the shortcut allowed) into one <c>MixDispatch.ResidualMixer</c>/<c>Residual</c> call and leaves other sums alone;
/// <c>@fused(false)</c> reaches the call. On the CPU the generated models take the reference path (the hook is never
/// asked, outputs are bit-identical with fused kernels on and off); on CUDA (category Gpu, skipped without a device)
/// every sub-block of the generated PoolFormer-S12 and ConvFormer-S18 is fused, within float32 1e-3 (TF32
/// convolutions, twelve to eighteen blocks) and bfloat16 3e-2 of the reference.
/// </summary>
public class ResidualDispatchTests
{
    const string Mix = """
        block sub(dim: int, token_mixer: mixer = pool(3)) (x: [B, dim, H, W]) -> [B, dim, H, W] {
          n = groupnorm1(dim)
          m = token_mixer(dim)
          @fused(false) m2 = token_mixer(dim)
          ls = scale(dim, 0.5)
          mlp = conv_mlp(dim, 2 * dim)
          y = x + m(n(x))
          y = ls(y) + ls(drop_path(mlp(n(y)), 0.1))
          y = y + m2(n(y))
          z = y + m(y)
          z = z + n(m(z))
          z = y + m(n(z))
          return z + ls(ls(m(n(z))))
        }
        """;

    static string Forward()
    {
        var result = Harness.Run(new[] { new InMemoryText("/repo/examples/sub.mix", Mix) }, out var output);
        Assert.Empty(result.Diagnostics.Select(d => d.ToString()));
        var errors = output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors));
        var code = result.Results.Single().GeneratedSources.Single(s => s.HintName == "sub.mix.g.cs").SourceText.ToString();
        return code[code.IndexOf("public override Tensor forward", StringComparison.Ordinal)..];
    }

    [Fact]
    public void SubBlocksBecomeOneDispatchCallAndOtherSumsStayAsWritten()
    {
        var f = Forward();
        Assert.Contains("var y = MixDispatch.ResidualMixer(x, n, m);", f);
        Assert.Contains("y = MixDispatch.Residual(y, n, mlp, ls, ls, 0.1, training);", f);
        Assert.Contains("y = MixDispatch.ResidualMixer(y, n, m2, allowFused: false);", f);
        Assert.Contains("var z = y + MixDispatch.TokenMixer(m, y);", f);             // no norm: a plain sum
        Assert.Contains("z = z + n.call(MixDispatch.TokenMixer(m, z));", f);         // norm outside the mixer
        Assert.Contains("z = y + MixDispatch.TokenMixer(m, n.call(z));", f);          // shortcut is another tensor
        Assert.Contains("return z + ls.call(ls.call(MixDispatch.TokenMixer(m, n.call(z))));", f); // two scales
    }

    static nn.Module<Tensor, Tensor> Seeded(Func<nn.Module<Tensor, Tensor>> make, int seed)
    {
        torch.manual_seed(seed);
        var m = make();
        using var _ = torch.no_grad();
        // layer scales of 1e-5 would hide the branches: give every 1-d parameter a value near one
        foreach (var p in m.parameters().Where(p => p.dim() == 1)) p.copy_(torch.rand_like(p) + 0.5);
        m.eval();
        return m;
    }

    [Fact]
    public void OnTheCpuGeneratedPoolFormerTakesTheReferencePath()
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var model = Seeded(() => new PoolformerS12(new PoolformerS12.Options { NumClasses = 10 }), 3);
        var x = torch.randn(2, 3, 64, 64);
        int asked = 0;
        var inner = MixDispatch.FusedResidual;
        var before = MixDispatch.FusedEnabled;
        Tensor on, off;
        // the hook is process-wide: count only this test's forwards (a test on another thread reached it once, stop 19)
        int thread = Environment.CurrentManagedThreadId;
        MixDispatch.FusedResidual = (p, t) => { if (Environment.CurrentManagedThreadId == thread) asked++; return inner?.Invoke(p, t); };
        try
        {
            MixDispatch.FusedEnabled = true;
            on = model.call(x);
            MixDispatch.FusedEnabled = false;
            off = model.call(x);
        }
        finally
        {
            MixDispatch.FusedResidual = inner;
            MixDispatch.FusedEnabled = before;
        }
        Assert.Equal(0, asked);
        Assert.Equal(0.0, (on - off).abs().max().item<float>());
    }

    [Fact]
    public void GeneratedMetaFormerBlockComputesTheWrittenExpression()
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var block = (MetaformerBlock)Seeded(() => new MetaformerBlock(new MetaformerBlock.Options(8)
        {
            TokenMixer = dim => Builtin.Pool(dim), Norm = dim => Builtin.GroupNorm1(dim), MlpAct = () => Builtin.GELU(),
            MlpBias = true, LayerScale = 1e-5, ResScale = 1.0,
        }), 4);
        var x = torch.randn(2, 8, 6, 5);
        var t = block.res_scale1.call(x) + block.layer_scale1.call(block.token_mixer.call(block.norm1.call(x)));
        t = block.res_scale2.call(t) + block.layer_scale2.call(block.mlp.call(block.norm2.call(t)));
        Assert.Equal(0.0, (block.call(x) - t).abs().max().item<float>());
    }

    static void RequireCuda()
    {
        bool cuda = TorchBackend.TryInitializeCuda(out var reason);
        Assert.SkipWhen(!cuda, $"no CUDA device: {reason}");
        Assert.True(KernelRuntime.Shared.IsAvailable, $"CUDA is present but kernels are not: {KernelRuntime.Shared.UnavailableReason}");
    }

    static double RelErr(Tensor a, Tensor b)
    {
        var x = a.to_type(ScalarType.Float64).cpu();
        var y = b.to_type(ScalarType.Float64).cpu();
        Assert.True(x.isfinite().all().item<bool>(), "output has non-finite values");
        return (x - y).norm().item<double>() / y.norm().item<double>();
    }

    [Theory]
    [Trait("Category", "Gpu")]
    [InlineData("poolformer_s12", "f32")]
    [InlineData("poolformer_s12", "bf16")]
    [InlineData("convformer_s18", "f32")]
    [InlineData("convformer_s18", "bf16")]
    public void GeneratedModelFusesEverySubBlockOnCuda(string name, string dtype)
    {
        RequireCuda();
        var dt = dtype == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        bool pool = name == "poolformer_s12";
        var model = Seeded(() => pool ? new PoolformerS12(new PoolformerS12.Options { NumClasses = 10 })
                                      : new ConvformerS18(new ConvformerS18.Options { NumClasses = 10 }), 7);
        model.to(torch.CUDA).to(dt);
        var x = torch.randn(2, 3, 112, 112, device: torch.CUDA).to_type(dt);
        var inner = MixDispatch.FusedResidual;
        var before = MixDispatch.FusedEnabled;
        int fused = 0, pooling = 0;
        Tensor reference, output;
        MixDispatch.FusedResidual = (p, t) =>
        {
            var y = inner?.Invoke(p, t);
            if (y is not null) { fused++; if (KernelModules.PoolSize(p.Branch) is not null) pooling++; }
            return y;
        };
        try
        {
            MixDispatch.FusedEnabled = false;
            reference = model.call(x);
            MixDispatch.FusedEnabled = true;
            output = model.call(x);
        }
        finally
        {
            MixDispatch.FusedResidual = inner;
            MixDispatch.FusedEnabled = before;
        }
        int blocks = pool ? 12 : 18;
        Assert.Equal(2 * blocks, fused);
        Assert.Equal(pool ? blocks : 0, pooling);
        double err = RelErr(output, reference);
        TestContext.Current.SendDiagnosticMessage($"{name} {dtype}: fused vs reference rel. err {err:E2}");
        Assert.InRange(err, 0, dt == ScalarType.BFloat16 ? 3e-2 : 1e-3);
    }
}
