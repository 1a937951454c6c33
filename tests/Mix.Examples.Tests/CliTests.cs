extern alias cli;

using System;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Mix.Training.Summary;
using Mix.Runtime.Caches;
using Mix.Runtime.Quantization;
using Xunit;

namespace Mix.Examples.Tests;

using MixCli = cli::Mix.Cli.MixCli;

/// <summary>The mix CLI, called in-process through its entry point.</summary>
public class CliTests
{
    static string RepoRoot([CallerFilePath] string file = "") => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", ".."));
    static string Model(string name) => Path.Combine(RepoRoot(), "models", name);

    static (int Code, string Out, string Err) Mix(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = MixCli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void Check_accepts_the_model_zoo()
    {
        var files = Directory.GetFiles(Path.Combine(RepoRoot(), "models"), "*.mix").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        var (code, output, _) = Mix(new[] { "check" }.Concat(files).ToArray());
        Assert.Equal(0, code);
        Assert.Contains($"{files.Length} files checked", output);
        Assert.Contains("0 errors, 0 warnings.", output);
    }

    [Fact]
    public void Check_reports_errors_in_compiler_format_and_fails()
    {
        var file = Path.Combine(Path.GetTempPath(), $"mix-cli-bad-{Guid.NewGuid():N}.mix");
        File.WriteAllText(file, "model bad(n: int = 4) (x: [B, 8]) -> [B, 8] {\n  fc = linear(16, n)\n  return fc(x)\n}\n");
        try
        {
            var (code, output, _) = Mix("check", file);
            Assert.Equal(1, code);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var diagnostics = lines.Where(l => l.Contains(": error MIX", StringComparison.Ordinal)).ToList();
            Assert.NotEmpty(diagnostics);
            foreach (var d in diagnostics)
                Assert.Matches(new Regex(@"^.+\.mix\(\d+,\d+\): error MIX\d{4}: .+$"), d.TrimEnd('\r'));
            Assert.Contains("(3,10): error MIX0302: linear expects in_features = 16", output);
            Assert.Contains("2 errors", output);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void Check_of_a_missing_file_is_a_usage_error()
    {
        var (code, _, error) = Mix("check", "no-such-file.mix");
        Assert.Equal(2, code);
        Assert.Contains("file not found: no-such-file.mix", error);
    }

    [Fact]
    public void Summary_prints_layers_shapes_parameters_and_flops()
    {
        var (code, output, _) = Mix("summary", Model("poolformer.mix"), "poolformer_s12", "-s", "H=224", "-s", "W=224");
        Assert.Equal(0, code);
        Assert.Contains("model poolformer_s12: ([B, 3, 224, 224]) -> [B, 1000]", output);
        Assert.Matches(new Regex(@"stages\.2\.blocks\.5\s+metaformer_block\s+\[B, 320, 14, 14\]\s+822,720"), output);
        Assert.Contains("total: 11,915,176 parameters, 3.65 GFLOPs per sample", output); // timm: 1.8 GMACs
    }

    [Fact]
    public void Summary_without_sizes_keeps_symbolic_shapes()
    {
        var (code, output, _) = Mix("summary", Model("mamba.mix"));
        Assert.Equal(0, code);
        Assert.Contains("[B, L, 768]", output);
        Assert.Contains("total: 129,135,360 parameters, FLOPs need concrete sizes", output);
        // The head shares the embedding matrix (@tied): its row counts nothing and says so.
        Assert.Matches(new Regex(@"lm_head\s+linear \(tied\)\s+\S.*\s0\s"), output);
    }

    [Fact]
    public void Summary_accounts_the_decoding_cache_per_layer_and_in_total()
    {
        // char_attention: 2 layers of causal attention, 4 heads × head_dim 16, float32 keys and values:
        // 2 (K, V) × 4 × 16 × 4 bytes = 512 bytes per token per layer, 1 KiB per token for the model.
        var language = Path.Combine(RepoRoot(), "examples", "Language", "language.mix");
        var (code, output, error) = Mix("summary", language, "char_attention");
        Assert.True(code == 0, error);
        const int perLayer = 2 * 4 * 16 * 4;
        Assert.Matches(new Regex(@"backbone\.layers\.0\s+attention_block\s+\[B, L, 64\]\s+[\d,]+\s+\?\s+" + ModelSummary.Bytes(perLayer) + "/token"), output);
        Assert.Contains($"cache (fp32): {ModelSummary.Bytes(2 * perLayer)}/token per sequence", output);

        // hybrid_lm: 9 Mamba layers (d_inner 1024, conv 4, state 16: fixed; the library mamba keeps the last
        // d_conv - 1 = 3 conv inputs) and 3 attention layers (512 wide).
        (code, output, error) = Mix("summary", Model("hybrid.mix"), "hybrid_lm");
        Assert.True(code == 0, error);
        double mamba = 1024 * (4 - 1 + 16) * 4, kv = 2 * 512 * 4;
        Assert.Matches(new Regex(@"backbone\.layers\.0\s+mamba_block.+\s" + ModelSummary.Bytes(mamba) + " fixed"), output);
        Assert.Contains($"cache (fp32): {ModelSummary.Bytes(3 * kv)}/token + {ModelSummary.Bytes(9 * mamba)} fixed per sequence", output);

        // models without causal mixers have no cache column
        (code, output, _) = Mix("summary", Model("poolformer.mix"), "poolformer_s12");
        Assert.Equal(0, code);
        Assert.DoesNotContain("cache", output);
    }

    [Fact]
    public void Summary_shows_a_quantized_kv_cache_next_to_float32()
    {
        var language = Path.Combine(RepoRoot(), "examples", "Language", "language.mix");
        var (code, output, error) = Mix("summary", language, "char_hybrid", "--kv-cache", "kivi4");
        Assert.True(code == 0, error);
        // KIVI-4 at head_dim 16, G = 32: keys 4 bits + fp16 scale and min per channel per 32 tokens (1 bit), values
        // 4 bits + fp16 scale and min per token per 16 channels (2 bits): 64 channels × (5 + 6) / 8 = 88 bytes per token;
        // the full-precision tail of up to R + G − 1 = 63 tokens costs 63 × 2 × 64 × 4 bytes per sequence.
        double tail = 63 * 2 * 64 * 4, mamba = 128 * (4 - 1 + 16) * 4;
        Assert.Contains("cache (kivi4)", output);
        Assert.Matches(new Regex(@"backbone\.layers\.1\s+attention_block.+512 B/token\s+88 B/token \+ " + Regex.Escape(ModelSummary.Bytes(tail)) + " fixed"), output);
        Assert.Contains($"cache (fp32): 512 B/token + {ModelSummary.Bytes(mamba)} fixed per sequence", output);
        Assert.Contains($"cache (KV kivi4, G=32, R=32): 88 B/token + {ModelSummary.Bytes(tail + mamba)} fixed per sequence", output);

        (code, _, error) = Mix("summary", language, "char_hybrid", "--kv-cache", "int3");
        Assert.Equal(2, code);
        Assert.Contains("unknown KV cache format 'int3'", error);
    }

    [Theory]
    [InlineData(KvQuantMode.Kivi4, 16, 32)]
    [InlineData(KvQuantMode.Kivi2, 16, 32)]
    [InlineData(KvQuantMode.VidKv, 16, 32)]
    [InlineData(KvQuantMode.Kivi4, 64, 32)]
    [InlineData(KvQuantMode.VidKv, 64, 32)]
    [InlineData(KvQuantMode.Kivi2, 128, 64)]
    [InlineData(KvQuantMode.VidKv, 128, 16)]
    public void Summary_kv_formats_match_the_runtime_accounting(KvQuantMode mode, int headDim, int group)
    {
        var options = new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = mode, GroupSize = group, ResidualLength = 24 } };
        using var slot = new QuantizedKvCacheSlot(0, 1, 3, headDim, options);
        var format = KvCacheFormat.Parse(mode.ToString(), group, 24);
        Assert.Equal(slot.BytesPerToken, format.BytesPerToken(3, headDim), 9);
        Assert.Equal(slot.FixedBytesPerRow, format.FixedBytes(3, headDim));

        // and the runtime accounting is what a block really stores (keys + values of G tokens)
        using var noGrad = TorchSharp.torch.no_grad();
        using var slot0 = new QuantizedKvCacheSlot(0, 1, 3, headDim, options with { Quantization = options.Quantization with { ResidualLength = 0 } });
        using var kv = TorchSharp.torch.randn(1, 3, group, headDim);
        slot0.Prefill(kv, kv);
        Assert.Equal(1, slot0.BlockCount);
        Assert.Equal(slot0.BytesPerToken, slot0.AllocatedBytes / (double)group, 6);
    }

    [Fact]
    public void Summary_names_the_models_when_one_is_unknown()
    {
        var (code, _, error) = Mix("summary", Model("poolformer.mix"), "nope");
        Assert.Equal(2, code);
        Assert.Contains("poolformer_s12", error);
    }

    [Fact]
    public void Emit_prints_the_generated_csharp()
    {
        var (code, output, error) = Mix("emit", Model("tsmixer.mix"), "--namespace", "My.Models");
        Assert.True(code == 0, error);
        Assert.Contains("// <auto-generated/>", output);
        Assert.Contains("namespace My.Models", output);
        Assert.Contains("public sealed partial class Tsmixer : nn.Module<Tensor, Tensor>", output);
        Assert.Contains("public sealed record Options", output);
    }

    [Fact]
    public void Emit_follows_imports()
    {
        var (code, output, error) = Mix("emit", Model("poolformer.mix"), "--all");
        Assert.True(code == 0, error);
        Assert.Contains("class PoolformerS12", output);
        Assert.Contains("class Metaformer ", output);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("check", "--help")]
    [InlineData("summary", "--help")]
    [InlineData("emit", "--help")]
    public void Help_everywhere(params string[] args)
    {
        var (code, output, _) = Mix(args);
        Assert.Equal(0, code);
        Assert.Contains("Usage:", output);
        Assert.Contains("mix", output);
    }
}
