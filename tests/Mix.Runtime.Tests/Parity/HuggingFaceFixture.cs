using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using Mix.Runtime.Checkpoints;
using Mix.Runtime.Tests.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Parity;

/// <summary>
/// One Hugging Face parity fixture from <c>Fixtures/parity</c> (see its README): <c>NAME.config.json</c> (the HF
/// config under <c>config</c>), <c>NAME.weights.safetensors</c> (the HF state dict) and <c>NAME.io.safetensors</c>
/// (inputs and the outputs HF produced in eval mode, fp32, on the CPU).
/// </summary>
internal sealed class HuggingFaceFixture : IDisposable
{
    private readonly JsonDocument document;
    private readonly SafeTensorsFile io;

    private HuggingFaceFixture(string name)
    {
        Name = name;
        document = JsonDocument.Parse(File.ReadAllText(PathOf(name + ".config.json")));
        WeightsPath = PathOf(name + ".weights.safetensors");
        io = SafeTensorsFile.Open(PathOf(name + ".io.safetensors"));
    }

    public static HuggingFaceFixture Open(string name) => new(name);

    public static string PathOf(string file) => Path.Combine(TestFiles.TestProjectDirectory(), "Fixtures", "parity", file);

    public string Name { get; }

    public string WeightsPath { get; }

    /// <summary>The HF class that made the fixture (<c>MambaModel</c>, <c>MambaForCausalLM</c>, ...).</summary>
    public string HfClass => document.RootElement.GetProperty("class").GetString()!;

    /// <summary>The HF <c>config.json</c> content.</summary>
    public JsonElement Config => document.RootElement.GetProperty("config");

    /// <summary>Names stored in the io file (inputs and outputs).</summary>
    public IReadOnlyList<string> IoNames => io.Names;

    /// <summary>Reads an input or output tensor (a new CPU tensor the caller disposes).</summary>
    public Tensor Read(string name) => io.Read(name);

    /// <summary><c>hidden_states.0</c>, <c>hidden_states.1</c>, ... in index order.</summary>
    public IReadOnlyList<string> HiddenStateNames => io.Names
        .Where(n => n.StartsWith("hidden_states.", StringComparison.Ordinal))
        .OrderBy(n => int.Parse(n["hidden_states.".Length..]))
        .ToList();

    /// <summary>Fails unless every field of the HF config is either mapped onto the C# model or explicitly known not
    /// to affect an eval-mode forward; a fixture with a field nobody looked at must not pass silently.</summary>
    public void AssertEveryConfigFieldIsAccountedFor(IEnumerable<string> mapped, IEnumerable<string> ignored)
    {
        var known = new HashSet<string>(mapped.Concat(ignored), StringComparer.Ordinal);
        var unknown = Config.EnumerateObject().Select(p => p.Name).Where(n => !known.Contains(n)).ToList();
        Assert.True(unknown.Count == 0, $"{Name}: HF config fields not mapped and not known to be irrelevant: {string.Join(", ", unknown)}");
    }

    public long Long(string field) => Config.GetProperty(field).GetInt64();

    public int Int(string field) => Config.GetProperty(field).GetInt32();

    public double Double(string field) => Config.GetProperty(field).GetDouble();

    public bool Bool(string field) => Config.GetProperty(field).GetBoolean();

    public string String(string field) => Config.GetProperty(field).GetString()!;

    public void Dispose()
    {
        io.Dispose();
        document.Dispose();
    }
}

/// <summary>The comparison every parity test uses.</summary>
internal static class ParityAssert
{
    /// <summary>
    /// Relative tolerance: the maximum absolute error over all elements must be at most
    /// <c>1e-4 × max(1, max |reference|)</c>. fp32 on the CPU on both sides; the remaining difference is summation
    /// order (oneDNN/BLAS blocking, chunked versus sequential scan).
    /// </summary>
    public const double RelativeTolerance = 1e-4;

    /// <summary>Asserts shape, dtype and the tolerance above; returns the max abs error (also written to the test
    /// output) so callers can report it.</summary>
    public static double Matches(Tensor reference, Tensor actual, string what)
    {
        Assert.True(reference.shape.SequenceEqual(actual.shape),
            $"{what}: shape [{string.Join(", ", actual.shape)}], reference [{string.Join(", ", reference.shape)}]");
        Assert.Equal(reference.dtype, actual.dtype);
        using var scope = torch.NewDisposeScope();
        var r = reference.detach().to_type(ScalarType.Float64);
        var a = actual.detach().to_type(ScalarType.Float64);
        Assert.False(a.isnan().any().item<bool>(), $"{what}: NaN in the output");
        double maxRef = r.abs().max().item<double>();
        double maxErr = (a - r).abs().max().item<double>();
        double bound = RelativeTolerance * Math.Max(1.0, maxRef);
        TestContext.Current.TestOutputHelper?.WriteLine($"{what}: max abs error {maxErr:G3} (max |ref| {maxRef:G4}, bound {bound:G3})");
        Assert.True(maxErr <= bound, $"{what}: max abs error {maxErr:G6} > {bound:G6} (max |reference| {maxRef:G6})");
        return maxErr;
    }
}
