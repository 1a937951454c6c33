using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Mix.Runtime.Caches;
using Mix.Runtime.Checkpoints;
using Mix.Runtime.Quantization;
using Mix.Runtime.Tests.Caches;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Quantization;

/// <summary>
/// <see cref="QuantizedCheckpoint.Load"/> is transactional: a file whose layer table, tensor set, shapes or dtypes do
/// not fit the model, or whose table is malformed, is a <see cref="CheckpointFormatException"/> naming the problem, and
/// the model keeps every layer and every value it had (it used to be left with its Linears replaced, or the process
/// aborted in native code on a wrong shape).
/// </summary>
public sealed class QuantizedCheckpointTests : IDisposable
{
    private const string QProj = "layers.0.attn.q_proj";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mix-qckpt-" + Guid.NewGuid().ToString("N"));
    private readonly string _saved;

    public QuantizedCheckpointTests()
    {
        Directory.CreateDirectory(_dir);
        _saved = Path.Combine(_dir, "int4.safetensors");
        using var noGrad = torch.no_grad();
        torch.manual_seed(11);
        using var model = new CausalAttentionLM(40, 32, 2, 4);
        Quantizer.Quantize(model, new QuantizationOptions { Mode = WeightQuantMode.Int4Grouped, GroupSize = 16 });
        QuantizedCheckpoint.Save(model, _saved);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>Rewrites the saved file after <paramref name="edit"/> changes its tensors and layer table.</summary>
    private string Variant(string name, Action<Dictionary<string, Tensor>, Dictionary<string, string>> edit)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        Dictionary<string, string> metadata;
        using (var file = SafeTensorsFile.Open(_saved))
        {
            foreach (var n in file.Names) tensors[n] = file.Read(n);
            metadata = file.Metadata.ToDictionary(kv => kv.Key, kv => kv.Value);
        }
        edit(tensors, metadata);
        var path = Path.Combine(_dir, name + ".safetensors");
        SafeTensors.Save(path, tensors.Select(kv => (kv.Key, kv.Value)), metadata);
        foreach (var t in tensors.Values) t.Dispose();
        return path;
    }

    private static void EditTable(Dictionary<string, string> metadata, Func<string, string> edit) =>
        metadata[QuantizedCheckpoint.MetadataKey] = edit(metadata[QuantizedCheckpoint.MetadataKey]);

    public static TheoryData<string> Mismatches => new()
    {
        "table names a layer the model lacks",
        "table lacks a layer whose packed tensors are in the file",
        "a tensor is missing",
        "an unexpected tensor",
        "a packed weight has the wrong shape",
        "a full-precision tensor has the wrong shape",
        "a tensor has the wrong dtype",
    };

    private string MismatchFile(string variant) => Variant(variant.Replace(' ', '_'), (t, m) =>
    {
        switch (variant)
        {
            case "table names a layer the model lacks":
                EditTable(m, j => j.Replace("\"" + QProj + "\"", "\"layers.7.attn.q_proj\""));
                break;
            case "table lacks a layer whose packed tensors are in the file":
                EditTable(m, j => j.Replace("\"" + QProj + "\"", "\"layers.0.attn.unused\""));
                break;
            case "a tensor is missing":
                t.Remove("layers.1.down_proj.scales", out var scales);
                scales!.Dispose();
                break;
            case "an unexpected tensor":
                t["layers.1.extra"] = torch.ones(3);
                break;
            case "a packed weight has the wrong shape":
                t[QProj + ".qweight"] = t[QProj + ".qweight"].reshape(16, 32);   // [out, in/2] = [32, 16] read as [16, 32]
                break;
            case "a full-precision tensor has the wrong shape":
                t["norm.weight"] = torch.ones(16);
                break;
            case "a tensor has the wrong dtype":
                t[QProj + ".scales"] = t[QProj + ".scales"].to_type(ScalarType.Float16);
                break;
            default:
                throw new ArgumentException(variant);
        }
    });

    public static TheoryData<string, string, string> MalformedTables => new()
    {
        { "mode int3", "\"mode\":\"int4\"", "\"mode\":\"int3\"" },
        { "mode missing", "\"mode\":\"int4\",", "" },
        { "odd group", "\"group\":16", "\"group\":15" },
        { "group not dividing", "\"group\":16", "\"group\":24" },
        { "negative group", "\"group\":16", "\"group\":-16" },
        { "group a string", "\"group\":16", "\"group\":\"16\"" },
        { "features differ from the model's", "\"in\":32", "\"in\":64" },
        { "bias where the model has none", "\"bias\":false", "\"bias\":true" },
    };

    private static string ExpectedWords(string variant) => variant switch
    {
        "table names a layer the model lacks" => "'layers.7.attn.q_proj' is not a Linear of the model",
        "table lacks a layer whose packed tensors are in the file" => "missing tensors [" + QProj + ".weight]",
        "a tensor is missing" => "missing tensors [layers.1.down_proj.scales]",
        "an unexpected tensor" => "unexpected tensors [layers.1.extra]",
        "a packed weight has the wrong shape" => $"'{QProj}.qweight' is U8 [16,32] in the file but Byte [32,16] in the model",
        "a full-precision tensor has the wrong shape" => "'norm.weight' is F32 [16] in the file but Float32 [32] in the model",
        "a tensor has the wrong dtype" => $"'{QProj}.scales' is F16",
        "mode int3" => "mode \"int3\" is not one this library writes",
        "mode missing" => "'mode' is missing",
        "odd group" => "int4 group size 15",
        "group not dividing" => "int4 group size 24",
        "negative group" => "int4 group size -16",
        "group a string" => "'group' is missing or not an integer",
        "features differ from the model's" => "is [32, 64] in the table but [32, 32] in the model",
        "bias where the model has none" => "has a bias in the table but none in the model",
        _ => throw new ArgumentException(variant),
    };

    [Theory]
    [MemberData(nameof(Mismatches))]
    public void AMismatchedCheckpointChangesNothing(string variant) => AssertRejectedAndUnchanged(MismatchFile(variant), ExpectedWords(variant));

    [Theory]
    [MemberData(nameof(MalformedTables))]
    public void AMalformedLayerTableIsAFormatErrorAndChangesNothing(string variant, string from, string to)
    {
        var path = Variant(variant.Replace(' ', '_'), (_, m) => EditTable(m, j =>
        {
            // Edit the q_proj entry only (every entry has the same fields).
            int at = j.IndexOf("\"" + QProj + "\"", StringComparison.Ordinal);
            int end = j.IndexOf('}', at);
            var entry = j[at..end];
            Assert.Contains(from, entry);
            return j[..at] + entry.Replace(from, to) + j[end..];
        }));
        AssertRejectedAndUnchanged(path, ExpectedWords(variant));
    }

    [Theory]
    [InlineData("[]", "is a JSON Array, not an object of layers")]
    [InlineData("{\"" + QProj + "\": 5}", "the entry is a JSON Number")]
    [InlineData("{not json", "is not valid JSON")]
    public void AStructurallyBrokenTableIsAFormatError(string table, string words)
    {
        var path = Variant("broken" + table.Length, (_, m) => m[QuantizedCheckpoint.MetadataKey] = table);
        AssertRejectedAndUnchanged(path, words);
    }

    [Fact]
    public void TheUnchangedFileStillLoads()
    {
        using var noGrad = torch.no_grad();
        using var model = new CausalAttentionLM(40, 32, 2, 4);
        QuantizedCheckpoint.Load(model, _saved);
        Assert.Equal(12, model.modules().OfType<QuantizedLinear>().Count());
    }

    private static void AssertRejectedAndUnchanged(string path, string words)
    {
        using var noGrad = torch.no_grad();
        torch.manual_seed(5);
        using var model = new CausalAttentionLM(40, 32, 2, 4);
        using var ids = CacheTestUtil.RandomIds(2, 7, 40, 3);
        using var before = model.forward(ids);
        var values = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        var modules = model.named_modules().Select(m => (m.name, m.module.GetType())).ToList();

        var e = Assert.Throws<CheckpointFormatException>(() => QuantizedCheckpoint.Load(model, path));
        Assert.Contains(words, e.Message);

        Assert.Equal(modules, model.named_modules().Select(m => (m.name, m.module.GetType())).ToList());
        var after = model.state_dict();
        Assert.Equal(values.Keys.Order(), after.Keys.Order());
        foreach (var (key, value) in after) Assert.True(TestUtil.Same(value, values[key]), $"{key} changed");
        using var output = model.forward(ids);
        Assert.True(TestUtil.Same(output, before), "the forward output changed");
        foreach (var v in values.Values) v.Dispose();
    }
}
