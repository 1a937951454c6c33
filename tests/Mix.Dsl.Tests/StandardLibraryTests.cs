using System.IO;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Semantics;
using Mix.Dsl.Text;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The standard library (dsl/Std/*.mix, imported as <c>mix/std/...</c>): it checks cleanly, its mixers keep the shape
/// contracts of the built-ins they re-express, problems inside it are located in it, and docs/language.md shows
/// each file as it is. Numerical parity with the built-ins: Mix.Generator.Tests' StdlibParityTests.
/// </summary>
public class StandardLibraryTests
{
    static MixCompilation Check(string text, string path = "/project/models/net.mix") =>
        MixCompilation.Create(new[] { new SourceText(path, text) });

    public static TheoryData<string> LibraryFiles()
    {
        var data = new TheoryData<string>();
        foreach (var p in StandardLibrary.Paths) data.Add(p);
        return data;
    }

    [Theory]
    [MemberData(nameof(LibraryFiles))]
    public void Library_file_checks_without_diagnostics(string path)
    {
        var c = Check($"import \"{path}\"\n");
        Assert.Empty(c.Diagnostics.Select(d => d.ToString()));
        Assert.Contains(c.Files, f => f.Source.Path == path);
    }

    [Theory]
    [MemberData(nameof(LibraryFiles))]
    public void Docs_show_each_library_mixer_as_it_is(string path)
    {
        if (path == "mix/std/mixers.mix") return; // the re-exporting file; its imports are listed in the docs' import example
        var docs = File.ReadAllText(Path.Combine(Repo.Root, "docs", "language.md")).Replace("\r\n", "\n");
        var text = File.ReadAllText(Path.Combine(Repo.Root, "dsl", "Std", Path.GetFileName(path))).Replace("\r\n", "\n").TrimEnd();
        Assert.Contains("```mix\n" + text + "\n```", docs);
    }

    [Fact]
    public void Mixers_file_imports_every_mixer_file()
    {
        var mixers = StandardLibrary.Tree("mix/std/mixers.mix")!;
        var others = StandardLibrary.Paths.Where(p => p != "mix/std/mixers.mix").ToList();
        Assert.Equal(others.OrderBy(p => p), mixers.Imports.OrderBy(p => p));
        foreach (var p in others) Assert.Single(StandardLibrary.Tree(p)!.File.Definitions);
    }

    [Fact]
    public void Import_resolves_from_any_folder_and_shadows_the_builtin()
    {
        var c = Check("import \"mix/std/mixers.mix\"\nblock b(dim: int) (x: [B, dim, H, W]) -> [B, dim, H, W] {\n  m = pool(dim = dim)\n  return m(x)\n}\n",
            "/deep/folder/of/models/net.mix");
        Assert.Empty(c.Diagnostics);
        var layer = c.Find("b")!.Root!.Children.Single();
        Assert.Equal("pool", layer.Kind);
        Assert.IsType<UserCallable>(c.Callables.Concat(c.Files.SelectMany(_ => c.Callables)).First(u => u.Name == "pool"));
        Assert.Equal("mix/std/pool.mix", c.Callables.First(u => u.Name == "pool").File.Source.Path);
    }

    // Inputs each mixer is given, with and without the library: the built-in's contract and the library's signature
    // must accept and reject the same ones.
    [Theory]
    [InlineData("pool(3)", "[B, 8, H, W]", true)]
    [InlineData("pool(5)", "[B, 8, 7, 9]", true)]
    [InlineData("pool(3)", "[B, 4, H, W]", false)]
    [InlineData("pool(3)", "[B, 8, H]", false)]
    [InlineData("pool(4)", "[B, 8, H, W]", false)]
    [InlineData("sepconv()", "[B, 8, H, W]", true)]
    [InlineData("sepconv(kernel_size = 3, padding = 1, bias = true)", "[B, 8, 5, 5]", true)]
    [InlineData("sepconv(kernel_size = 5, padding = 1)", "[B, 8, H, W]", false)]
    [InlineData("sepconv()", "[B, 6, H, W]", false)]
    [InlineData("sepconv()", "[B, N, 8]", false)]
    [InlineData("attention(head_dim = 4)", "[B, N, 8]", true)]
    [InlineData("attention(num_heads = 3, head_dim = 5)", "[B, 7, 8]", true)]
    [InlineData("attention(head_dim = 4)", "[B, N, 6]", false)]
    [InlineData("attention(head_dim = 4)", "[B, 8, H, W]", false)]
    [InlineData("attention(head_dim = 16)", "[B, N, 8]", false)]
    [InlineData("random_mixing(num_tokens = 12)", "[B, 8, 3, 4]", true)]
    [InlineData("random_mixing(num_tokens = 12)", "[B, 8, 2, 6]", true)]
    [InlineData("random_mixing(num_tokens = 12)", "[B, 8, 3, 5]", false)]
    [InlineData("random_mixing(num_tokens = 12)", "[B, 6, 3, 4]", false)]
    [InlineData("global_filter(h = 4, w = 6)", "[B, 24, 8]", true)]
    [InlineData("global_filter(h = 4, w = 6)", "[B, 25, 8]", false)]
    [InlineData("global_filter(h = 4, w = 6)", "[B, 24, 6]", false)]
    [InlineData("afno(num_blocks = 4)", "[B, H, W, 8]", true)]
    [InlineData("afno(num_blocks = 2, hidden_size_factor = 2)", "[B, 5, 7, 8]", true)]
    [InlineData("afno(num_blocks = 4)", "[B, H, W, 6]", false)]
    [InlineData("afno(num_blocks = 3)", "[B, H, W, 8]", false)]
    [InlineData("afno()", "[B, 8, H, W]", false)]
    [InlineData("aff(num_blocks = 4)", "[B, H, W, 8]", true)]
    [InlineData("aff(num_blocks = 4)", "[B, H, W, 6]", false)]
    [InlineData("aff(num_blocks = 3)", "[B, H, W, 8]", false)]
    [InlineData("mamba()", "[B, L, 8]", true)]
    [InlineData("mamba(d_state = 4, d_conv = 2, dt_rank = 3, bias = true)", "[B, 5, 8]", true)]
    [InlineData("mamba()", "[B, L, 6]", false)]
    [InlineData("mamba()", "[B, 8, H, W]", false)]
    public void Library_mixer_keeps_the_builtin_contract(string mixer, string input, bool accepted)
    {
        string Block(bool library) => (library ? "import \"mix/std/mixers.mix\"\n" : "") +
            $"block b(dim: int = 8) (x: {input}) -> {input} {{\n  m = {mixer}(8)\n  return m(x)\n}}\n";
        var builtin = Check(Block(false));
        var library = Check(Block(true));
        Assert.Equal(accepted, !builtin.HasErrors);
        Assert.Equal(accepted, !library.HasErrors);
    }

    [Fact]
    public void Library_mixer_keys_and_shapes_are_the_builtins()
    {
        foreach (var (mixer, shape, dim) in new[]
                 {
                     ("pool(3)", "[B, 8, 5, 5]", 8), ("sepconv(bias = true, expansion_ratio = 1.5)", "[B, 8, 5, 5]", 8),
                     ("attention(head_dim = 4, qkv_bias = true)", "[B, 5, 8]", 8), ("random_mixing(num_tokens = 12)", "[B, 8, 3, 4]", 8),
                     ("global_filter(h = 4, w = 7)", "[B, 28, 8]", 8), ("afno(num_blocks = 2, hidden_size_factor = 3)", "[B, 5, 5, 8]", 8),
                     ("aff(num_blocks = 4)", "[B, 5, 6, 8]", 8), ("mamba(d_state = 4, bias = true)", "[B, 5, 8]", 8),
                     ("mamba(dt_rank = 3, conv_bias = false, expand = 3)", "[B, 5, 40]", 40),
                 })
        {
            string Model(bool library, string shape) => (library ? "import \"mix/std/mixers.mix\"\n" : "") +
                $"model m() (x: {shape}) -> {shape} {{\n  token_mixer = {mixer}({dim})\n  return token_mixer(x)\n}}\n";
            var b = Check(Model(false, shape)).Find("m")!.Root!;
            var l = Check(Model(true, shape)).Find("m")!.Root!;
            string Keys(LayerNode n) => string.Join("; ", n.AllWeights().Select(w => $"{w.Key} [{string.Join(", ", w.Weight.Shape)}]").OrderBy(k => k));
            Assert.Equal(Keys(b), Keys(l));
            Assert.Equal(b.ParameterCount(), l.ParameterCount());
        }
    }

    [Fact]
    public void A_problem_inside_a_library_file_is_located_there()
    {
        var c = Check("import \"mix/std/mixers.mix\"\nblock b(dim: int) (x: [B, dim, H, W]) -> [B, dim, H, W] {\n  m = sepconv(kernel_size = 5)(dim)\n  return m(x)\n}\n");
        Assert.True(c.HasErrors);
        // padding 3 with a 5×5 kernel grows H and W: the library's own signature says so, at its return.
        var d = Assert.Single(c.Diagnostics, x => x.Path == "mix/std/sepconv.mix");
        Assert.Equal("MIX0303", d.Id);
        Assert.StartsWith("mix/std/sepconv.mix(13,10): error MIX0303", d.ToString());
    }

    [Fact]
    public void Unknown_library_file_suggests_the_nearest()
    {
        var c = Check("import \"mix/std/pol.mix\"\n");
        var d = Assert.Single(c.Diagnostics);
        Assert.Equal("MIX0104", d.Id);
        Assert.Contains("did you mean 'mix/std/pool.mix'", d.Message);
        Assert.Equal("\"mix/std/pol.mix\"", "import \"mix/std/pol.mix\"\n".Substring(d.Span.Start, d.Span.Length));
    }

    [Theory]
    [InlineData("@kernel(\"sepconv\") mixer mine() (x: [B, dim, H, W]) -> [B, dim, H, W] { return x }\n", "reserved to the standard library")]
    [InlineData("@kernel(\"flash\") mixer mine() (x: [B, dim, H, W]) -> [B, dim, H, W] { return x }\n", "takes one kernel name")]
    public void Kernel_annotation_is_checked(string text, string message)
    {
        var d = Assert.Single(Check(text).Diagnostics);
        Assert.Equal("MIX0108", d.Id);
        Assert.Contains(message, d.Message);
        Assert.StartsWith("@kernel(", text.Substring(d.Span.Start, d.Span.Length));
    }

    [Fact]
    public void A_user_file_still_cannot_take_a_builtin_mixer_name()
    {
        Assert.Contains(Check("mixer pool() (x: [B, dim, H, W]) -> [B, dim, H, W] { return x }\n").Diagnostics, d => d.Id == "MIX0102");
        Assert.Contains(Check("import \"mix/std/pool.mix\"\nmixer pool() (x: [B, dim, H, W]) -> [B, dim, H, W] { return x }\n").Diagnostics, d => d.Id == "MIX0102");
    }
}
