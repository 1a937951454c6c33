using System.IO;
using System.Linq;
using Mix.Dsl.Text;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The model zoo shipped inside Mix.Dsl (<c>mix/models/...</c>): the same text as models/*.mix, importable from any
/// folder, its relative imports resolved inside the zoo, a misspelt file a located MIX0104 with a suggestion.
/// </summary>
public class ZooLibraryTests
{
    [Fact]
    public void The_embedded_zoo_is_models_folder()
    {
        var onDisk = Directory.GetFiles(Repo.ModelsDir, "*.mix").Select(Path.GetFileName).OrderBy(n => n, System.StringComparer.Ordinal).ToArray();
        Assert.Equal(onDisk.Select(n => "mix/models/" + n), StandardLibrary.ModelPaths);
        foreach (var name in onDisk)
            Assert.Equal(File.ReadAllText(Path.Combine(Repo.ModelsDir, name!)).Replace("\r\n", "\n"),
                StandardLibrary.Source("mix/models/" + name)!.Text.Replace("\r\n", "\n"));
    }

    [Fact]
    public void A_zoo_file_imports_from_any_folder_with_its_own_imports()
    {
        var text = "import \"mix/models/poolformer.mix\"\nimport \"mix/models/metaformer.mix\"\n" +
            "model mine(num_classes: int = 10) = metaformer(num_classes = num_classes, depths = [2, 2, 6, 2])\n";
        var c = MixCompilation.Create(new[] { new SourceText("/some/project/deep/net.mix", text) });
        if (c.Diagnostics.Count > 0) Assert.Fail(string.Join("\n", c.Diagnostics.Select(d => d.ToString())));
        // poolformer.mix's `import "metaformer.mix"` is the zoo's metaformer.mix: one file, however many import it.
        Assert.Single(c.Files, f => f.Source.Path == "mix/models/metaformer.mix");
        Assert.Equal("[B, 10]", c.Find("mine")!.Output!.ToString());
        Assert.Equal(11_915_176, c.Find("poolformer_s12")!.Root!.ParameterCount());
    }

    [Fact]
    public void A_misspelt_zoo_file_is_MIX0104_with_a_suggestion()
    {
        var text = "import \"mix/models/poolfromer.mix\"\n";
        var c = MixCompilation.Create(new[] { new SourceText("net.mix", text) });
        var d = Assert.Single(c.Diagnostics);
        Assert.Equal("MIX0104", d.Id);
        Assert.Contains("mix/models/poolfromer.mix", text.Substring(d.Span.Start, d.Span.Length));
        Assert.Contains("the model zoo has no 'mix/models/poolfromer.mix'; did you mean 'mix/models/poolformer.mix'?", d.Message);
    }
}
