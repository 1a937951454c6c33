using System;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using Mix.Dsl.Semantics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// Every named configuration of the catalog's third part in the zoo has exactly the official state dict: the same
/// keys with the same shapes (buffers included) and the same parameter count. The expected numbers come from the
/// official code built on the CPU by tests/parity/catalog3_variant_keys.py: the entry count and the SHA-256 of the
/// sorted "key [d0,d1,...]" lines (its <c>--write DIR</c> writes those lines out, to find the difference when a hash
/// does not match). MambaOut: timm's registered functions; CAS-ViT, iFormer and FFNet: the official registered
/// functions; RaftMLP, MS-MLP and WaveMix: their official configuration files.
/// </summary>
public class Catalog3VariantTests
{
    static readonly MixCompilation Examples = MixCompilation.Create(Repo.ExampleSources());

    [Theory]
    [InlineData("mambaout_femto", 7304536, 172, "cb9d148ed50490ed2505c6ea08c5531700c19f0f5386965fbe1e49d0bb245ccc")]
    [InlineData("mambaout_kobe", 9141208, 220, "ecf58d845281f60d775d68d054a0ce9a5f067b29fd2510636f0d6bce0f7e82d9")]
    [InlineData("mambaout_tiny", 26545096, 172, "abd041bf2a2d40211ee4b04612d0ba973e6c6bf1ba0e3213f25d6fb4e0a95f52")]
    [InlineData("mambaout_small", 48488072, 324, "35a5f119cdef1d68f0d296c8afbf4ee5b37d40305de4b72c983c3e3bbfcc92ce")]
    [InlineData("mambaout_base", 84813092, 324, "bf74ed21663ccdc213a064c694cd8994c30d6f83aca6a9e5ad2ad22d5b29f553")]
    [InlineData("rcvit_xs", 3200700, 524, "50df1f49dcdfd73a285b7c605049ca60f8f21a164a255611fee81dd4a9ce9d52")]
    [InlineData("rcvit_s", 5764224, 764, "ced334fe5aebb37e657909c96d7be4012c4311408cc421a0f2de7ddadd61c178")]
    [InlineData("rcvit_m", 12421520, 764, "b13e7b9fe7a568a5808ff8c46584c470354036dafadb3cbdc7309d7d8759b4d4")]
    [InlineData("rcvit_t", 21763120, 764, "8a02b9786436b3ab7ce2f63aa82924f67e7c221b8c8d2b56ea2680b741436282")]
    [InlineData("iformer_small", 19866344, 373, "28bf697e4e365f4b32613d221db528f6851fa31952bae1792581c61012f89625")]
    [InlineData("iformer_base", 47866216, 593, "b26757e2c126ad954d60f652ff9217c830dd9dce663c8a9c8c3353660c1e280f")]
    [InlineData("iformer_large", 86637096, 707, "854c521bd9e8203315c8dd88105f33fbcdbdd564dd26c0f4bb0ab189621fdeff")]
    [InlineData("iformer_small_384", 20899944, 373, "975c57cd7ec59b0b3927d47422a6f33add73b2ffb84d46bfc21155da550dc6b7")]
    [InlineData("iformer_base_384", 48936296, 593, "195f504e66762411519484b3ade111db9e5830040f94cc6f373685d2bcc423ee")]
    [InlineData("iformer_large_384", 87743656, 707, "971e589018505d58da02a19cb646fba7c4ffa7748221d81055d94e4c7c56c66b")]
    [InlineData("ffnet_1", 13775656, 553, "59fe126e85a3f7265ba5216e88deea43557290b9ab8fb98a5c753e219ef7f25b")]
    [InlineData("ffnet_2", 27208408, 1057, "6649b28485157c159b1135077eb8f8bc620061907c32c58c90af2b79b3d1f4ce")]
    [InlineData("ffnet_3", 48817896, 1593, "d99ac620881a5cf447ff830ef7622ffc51b01ef51b1625d6a2bfe5bdc2180cf3")]
    [InlineData("ffnet_4", 79868968, 1737, "4bb4a9d347d7cfc73acd0c3f61c11bf8e85b53e0eb1f17f531abf437569aa95f")]
    [InlineData("raft_mlp_s", 9868768, 228, "084f8d6fa2ecc1f11e283cb6d933ff4a2e399ae060a498c676fc1994896fffab")]
    [InlineData("raft_mlp_m", 21413632, 228, "c859575e894e7949e30bc49814199460ebc8fc8aa4c244644e2d0931573121af")]
    [InlineData("raft_mlp_l", 36184672, 228, "42f985e6a40f42e1fac1c8425dfffeaffd1ac40988966779ccab53f345f0c561")]
    [InlineData("ms_mlp_tiny", 28656232, 506, "b816dbd91e3c728377326c3ef5d94e694df5edf38787e0352a7b5df8df45bd08")]
    [InlineData("ms_mlp_small", 50303752, 992, "b987c3947c52d31fbd85b7424063a08f24c9cda18a72cb9292fbbb504cf1a7b0")]
    [InlineData("ms_mlp_base", 88696792, 992, "827b371950829f576a322cdf518384b706d6ad0fd2b52db6eea82c3b12660f39")]
    [InlineData("wavemix_192_16", 27857608, 573, "4f7aa8c04c7340ba5399bbb08b36fadfe013898605feeaa6ec369e7442f999be")]
    [InlineData("wavemix_cifar10", 3042550, 97, "12473c752142ad75a93cc64c190ddb1aef95b9f18bb9edd6e4ff4ffef9c76120")]
    public void Keys_shapes_and_count_are_the_official_models(string name, long parameters, int entries, string sha256)
    {
        var model = Examples.Find(name);
        Assert.True(model?.Root is not null, $"{name} is not a zoo model");
        var root = model!.Root!;
        var lines = root.AllWeights()
            .Select(w => w.Key + " " + w.Weight.ShapeText.Replace(", ", ",") + "\n")
            .OrderBy(l => l.Substring(0, l.IndexOf(' ')), StringComparer.Ordinal)
            .ToList();
        Assert.Equal(entries, lines.Count);
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(string.Concat(lines)))).ToLowerInvariant();
        Assert.True(sha256 == hash,
            $"{name}: the keys or shapes differ from the official state dict; compare with catalog3_variant_keys.py --write. First lines: "
            + string.Concat(lines.Take(3)));
        Assert.Equal(parameters, root.ParameterCount());
        Assert.Empty(Examples.Diagnostics.Where(d => d.Severity == Mix.Dsl.Diagnostics.Severity.Error).Select(d => d.ToString()));
    }
}
