using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// What <see cref="SubBlockPlanner"/> reads from MetaFormer branches (scales, activations, projections without their
    /// bias) and the hand-written residual epilogue it may choose (<see cref="FusedOps.ScaleResidual"/>).
    /// </summary>
    internal static class FusedBranches
    {
        /// <summary>A layer/res scale as a <see cref="Scale"/> (null for none: null or an identity module); false for any other module.</summary>
        public static bool TryScale(nn.Module<Tensor, Tensor>? module, out Scale? scale)
        {
            scale = module as Scale;
            return module is null or Scale or Identity;
        }

        /// <summary>The fused activation computing <paramref name="act"/>, with StarReLU's scalars; false when there is none.</summary>
        public static bool TryActivation(nn.Module<Tensor, Tensor> act, out FusedActivation activation, out Tensor? starScale, out Tensor? starBias)
        {
            (activation, starScale, starBias) = act switch
            {
                GELU { approximate: GELU.Approximate.none } => (FusedActivation.Gelu, null, null),
                StarReLU s => (FusedActivation.StarReLU, s.scale, s.bias),
                SquaredReLU => (FusedActivation.SquaredReLU, null, null),
                Identity => (FusedActivation.None, null, null),
                _ => ((FusedActivation)(-1), null, null),
            };
            return (int)activation >= 0;
        }

        /// <summary>A 1x1 convolution or a linear layer applied without its bias (bias added later by a fused epilogue).</summary>
        internal static Tensor Project(nn.Module<Tensor, Tensor> layer, Tensor x) => layer switch
        {
            Conv2d c => nn.functional.conv2d(x, c.weight),
            Linear l => nn.functional.linear(x, l.weight),
            QuantizableLinear { IsQuantized: false } l => nn.functional.linear(x, l.weight),
            _ => throw new ArgumentException($"unexpected projection {layer.GetType().Name}"),
        };

        internal static Tensor? BiasOf(nn.Module<Tensor, Tensor> layer) => layer switch
        {
            Conv2d c => c.bias,
            Linear l => l.bias,
            QuantizableLinear { IsQuantized: false } l => l.bias,
            _ => null,
        };

        internal static bool IsPointwise(nn.Module<Tensor, Tensor> layer) => layer switch
        {
            Conv2d c => c.weight.shape is [_, _, 1, 1],
            Linear => true,
            QuantizableLinear { IsQuantized: false } => true,
            _ => false,
        };

        /// <summary>
        /// <c>resScale(x) + layerScale(o + bias)</c> in one fused pass when the scales act along <paramref name="channelDim"/>
        /// and <paramref name="x"/> and <paramref name="o"/> share a layout, else null.
        /// </summary>
        public static Tensor? TryEpilogue(Tensor x, Tensor o, Scale? ls, Scale? rs, Tensor? bias, int channelDim)
        {
            var shape = x.shape;
            int cd = channelDim < 0 ? shape.Length + channelDim : channelDim;
            bool alongChannels = (ls is null || Matches(ls, shape, cd)) && (rs is null || Matches(rs, shape, cd));
            return alongChannels ? FusedOps.ScaleResidual(x, o, ls?.scale, rs?.scale, bias, channelDim) : null;
        }

        private static bool Matches(Scale s, long[] shape, int cd) =>
            s.ChannelsFirst ? cd == 1 && shape.Length == 4 && shape[1] == s.scale.numel() : cd == shape.Length - 1 && shape[cd] == s.scale.numel();
    }
}
