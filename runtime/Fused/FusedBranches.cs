using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// Inference forwards of MetaFormer branches around the fused epilogues: projections run without their bias,
    /// <see cref="FusedOps.BiasActivation"/> adds the first bias and applies the activation in one pass, and
    /// <see cref="FusedOps.ScaleResidual"/> adds the last bias, applies the layer and res scales and the residual add in
    /// one pass. Each step falls back to the reference operation where its kernel does not apply, so results always
    /// equal the reference modules' (up to rounding).
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

        /// <summary>
        /// A norm's output: GroupNorm with one group through <see cref="FusedOps.GroupNorm1"/>, channel LayerNorms through
        /// <see cref="FusedOps.LayerNorm"/> (when the channels are innermost in memory), any other norm as itself.
        /// </summary>
        public static Tensor Norm(nn.Module<Tensor, Tensor> norm, Tensor x) => norm switch
        {
            GroupNorm1 g => FusedOps.GroupNorm1(x, g.weight, g.bias, g.Eps) ?? g.call(x),
            GroupNorm1NoBias g => FusedOps.GroupNorm1(x, g.weight, null, g.Eps) ?? g.call(x),
            LayerNorm2dNoBias l when x.dim() == 4 => FusedOps.LayerNorm(x, l.weight, null, l.Eps, 1) ?? l.call(x),
            LayerNorm2d l when x.dim() == 4 => FusedOps.LayerNorm(x, l.weight, l.bias, l.Eps, 1) ?? l.call(x),
            LayerNormNoBias l => FusedOps.LayerNorm(x, l.weight, null, l.Eps, -1) ?? l.call(x),
            _ => norm.call(x),
        };

        /// <summary>A 1x1 convolution or a linear layer applied without its bias (bias added later by a fused epilogue).</summary>
        private static Tensor Project(nn.Module<Tensor, Tensor> layer, Tensor x) => layer switch
        {
            Conv2d c => nn.functional.conv2d(x, c.weight),
            Linear l => nn.functional.linear(x, l.weight),
            QuantizableLinear { IsQuantized: false } l => nn.functional.linear(x, l.weight),
            _ => throw new ArgumentException($"unexpected projection {layer.GetType().Name}"),
        };

        private static Tensor? BiasOf(nn.Module<Tensor, Tensor> layer) => layer switch
        {
            Conv2d c => c.bias,
            Linear l => l.bias,
            QuantizableLinear { IsQuantized: false } l => l.bias,
            _ => null,
        };

        private static bool IsPointwise(nn.Module<Tensor, Tensor> layer) => layer switch
        {
            Conv2d c => c.weight.shape is [_, _, 1, 1],
            Linear => true,
            QuantizableLinear { IsQuantized: false } => true,
            _ => false,
        };

        /// <summary>Per-channel <paramref name="v"/> shaped to broadcast along <paramref name="channelDim"/> of <paramref name="like"/>.</summary>
        private static Tensor Along(Tensor v, Tensor like, int channelDim)
        {
            var shape = new long[like.dim()];
            Array.Fill(shape, 1L);
            shape[channelDim < 0 ? shape.Length + channelDim : channelDim] = v.numel();
            return v.view(shape);
        }

        /// <summary><c>act(h + bias)</c>, fused when possible.</summary>
        private static Tensor BiasAct(Tensor h, Tensor? bias, nn.Module<Tensor, Tensor> act, FusedActivation a, Tensor? s, Tensor? b, int channelDim) =>
            FusedOps.BiasActivation(h, bias, a, s, b, channelDim) ?? act.call(bias is null ? h : h + Along(bias, h, channelDim));

        /// <summary>
        /// <c>resScale(x) + layerScale(o + bias)</c>: one fused pass when the scales act along <paramref name="channelDim"/>
        /// and <paramref name="x"/> and <paramref name="o"/> share a layout, else the reference operations.
        /// </summary>
        public static Tensor Epilogue(Tensor x, Tensor o, Scale? ls, Scale? rs, Tensor? bias, int channelDim)
        {
            var shape = x.shape;
            int cd = channelDim < 0 ? shape.Length + channelDim : channelDim;
            bool alongChannels = (ls is null || Matches(ls, shape, cd)) && (rs is null || Matches(rs, shape, cd));
            if (alongChannels && FusedOps.ScaleResidual(x, o, ls?.scale, rs?.scale, bias, channelDim) is Tensor y) return y;
            var branch = bias is null ? o : o + Along(bias, o, channelDim);
            if (ls is not null) branch = ls.call(branch);
            return (rs is null ? x : rs.call(x)) + branch;
        }

        private static bool Matches(Scale s, long[] shape, int cd) =>
            s.ChannelsFirst ? cd == 1 && shape.Length == 4 && shape[1] == s.scale.numel() : cd == shape.Length - 1 && shape[cd] == s.scale.numel();

        /// <summary>The sub-block <c>resScale(x) + layerScale(mlp(norm(x)))</c> with fused epilogues; null when the MLP has parts the kernels do not cover.</summary>
        public static Tensor? MlpResidual(Tensor x, nn.Module<Tensor, Tensor> norm, Mlp mlp, Scale? ls, Scale? rs)
        {
            if (mlp.training || mlp.norm is not Identity || !IsPointwise(mlp.fc1) || !IsPointwise(mlp.fc2)
                || mlp.fc1.GetType() != mlp.fc2.GetType() || !TryActivation(mlp.act, out var a, out var s, out var b))
                return null;
            int channelDim = mlp.fc1 is Conv2d ? 1 : -1;
            using var scope = torch.NewDisposeScope();
            var n = Norm(norm, x);
            var h = BiasAct(Project(mlp.fc1, n), BiasOf(mlp.fc1), mlp.act, a, s, b, channelDim);
            var o = Project(mlp.fc2, h);
            return Epilogue(x, o, ls, rs, BiasOf(mlp.fc2), channelDim).MoveToOuterDisposeScope();
        }

        /// <summary>The sub-block <c>resScale(x) + layerScale(sepconv(norm(x)))</c> with fused epilogues; null when the activation has no kernel.</summary>
        public static Tensor? SepConvResidual(Tensor x, nn.Module<Tensor, Tensor> norm, SepConvParts sep, Scale? ls, Scale? rs)
        {
            if (sep.Module.training || x.dim() != 4 || !TryActivation(sep.Act1, out var a, out var s, out var b)) return null;
            using var scope = torch.NewDisposeScope();
            var n = Norm(norm, x);
            var o = Project(sep.Pwconv2, SepConvMiddle(sep, n, a, s, b));
            return Epilogue(x, o, ls, rs, sep.Pwconv2.bias, 1).MoveToOuterDisposeScope();
        }

        /// <summary>The separable convolution alone (a token-mixer call site), with its first bias and activation fused.</summary>
        public static Tensor? SepConv(SepConvParts sep, Tensor x)
        {
            if (sep.Module.training || x.dim() != 4 || !TryActivation(sep.Act1, out var a, out var s, out var b)) return null;
            using var scope = torch.NewDisposeScope();
            var y = sep.Pwconv2.forward(SepConvMiddle(sep, x, a, s, b));
            return y.MoveToOuterDisposeScope();
        }

        private static Tensor SepConvMiddle(SepConvParts sep, Tensor x, FusedActivation a, Tensor? s, Tensor? b)
        {
            var h = BiasAct(Project(sep.Pwconv1, x), sep.Pwconv1.bias, sep.Act1, a, s, b, 1);
            return sep.Act2.call(sep.Dwconv.forward(h));
        }
    }
}
