using Mix.Runtime.Builtins;
using Mix.Zoo;

namespace Mix.Runtime.Tests;

/// <summary>The zoo's generated <c>metaformer_block</c> (models/metaformer.mix) configured as the tests need it.</summary>
internal static class ZooBlocks
{
    public static MetaformerBlock MetaFormer(long dim, MixerFactory? mixer = null, NormFactory? norm = null, ActFactory? act = null,
        bool mlpBias = false, double? layerScale = null, double? resScale = null, bool useNchw = true, double dropPath = 0.0) =>
        new(new MetaformerBlock.Options(dim)
        {
            TokenMixer = mixer ?? (d => Builtin.Identity(d)),
            Norm = norm ?? (d => Builtin.LayerNorm2dNoBias(d)),
            MlpAct = act ?? (() => Builtin.StarReLU()),
            MlpBias = mlpBias,
            LayerScale = layerScale,
            ResScale = resScale,
            UseNchw = useNchw,
            DropPathRate = dropPath,
        });

    /// <summary>PoolFormer's block: pooling, GroupNorm(1), GELU MLP with bias, a layer scale.</summary>
    public static MetaformerBlock PoolFormer(long dim, double layerScale, double dropPath = 0.0) =>
        MetaFormer(dim, d => Builtin.Pool(d), d => Builtin.GroupNorm1(d), () => Builtin.GELU(), mlpBias: true, layerScale: layerScale, dropPath: dropPath);
}
