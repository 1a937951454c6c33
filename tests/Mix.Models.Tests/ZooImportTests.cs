using System.Collections.Generic;
using System.Linq;
using Mix.ZooTests.Generated;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.ZooTests;

/// <summary>
/// Zoo/user.mix imports <c>mix/models/metaformer.mix</c> and <c>mix/models/mamba.mix</c> by their package-relative
/// names: the generator compiled it into this project, and the model it builds is the registry's model of the same
/// parameters (same keys and shapes, same outputs with the same weights).
/// </summary>
public class ZooImportTests
{
    [Fact]
    public void A_user_model_aliasing_the_zoo_metaformer_matches_the_registry_model()
    {
        using var mine = new TinyPoolformer();
        using var zoo = Models.Create("metaformer", new ModelOptions
        {
            NumClasses = 4,
            Overrides = new Dictionary<string, object?> { ["depths"] = new[] { 1, 1 }, ["dims"] = new[] { 8, 16 } },
        });
        Assert.Equal(zoo.state_dict().Select(kv => (kv.Key, string.Join(",", kv.Value.shape))),
            mine.state_dict().Select(kv => (kv.Key, string.Join(",", kv.Value.shape))));
        // The zoo's default mixers are pool(3) too: with the same weights the two compute the same thing.
        mine.load_state_dict(zoo.state_dict());
        mine.eval();
        zoo.eval();
        using var _ = no_grad();
        var x = randn(2, 3, 32, 32);
        Assert.Equal(0, (mine.call(x) - zoo.call(x)).abs().max().item<float>());
    }

    [Fact]
    public void A_user_model_uses_a_zoo_block()
    {
        using var lm = new TinyMambaLm();
        Assert.Contains("layers.1.mixer.A_log", lm.state_dict().Keys);
        using var _ = no_grad();
        using var y = lm.call(randint(0, 20, new long[] { 1, 5 }, dtype: ScalarType.Int64));
        Assert.Equal(new long[] { 1, 5, 20 }, y.shape);
        // The imported classes are internal to this assembly, generated from the zoo text shipped in Mix.Dsl.
        var block = typeof(TinyMambaLm).Assembly.GetType("Mix.Generated.Zoo.MambaBlock");
        Assert.NotNull(block);
        Assert.False(block!.IsPublic);
    }
}
