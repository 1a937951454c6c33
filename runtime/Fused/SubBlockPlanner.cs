using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Text;
using Mix.Runtime.Builtins;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// The fusion planner's runtime half for residual sub-blocks, <c>resScale(x) + layerScale(branch(norm(x)))</c>. A
    /// sub-block's layers are values chosen per instance (the zoo's <c>metaformer_block</c> takes its norm, mixer and
    /// MLP as arguments), so the generator cannot see through them; the runtime does, once per sub-block: it writes the
    /// sub-block as steps over values (the norm, the projections and convolutions and the pooling window as library
    /// calls, the pointwise work between them as the planner's regions, <see cref="EpilogueRegions"/> and
    /// <see cref="NormRegions"/>) and runs them. Where a hand-written kernel computes a step, or a span of steps that no
    /// region can (GroupNorm with one group reduces over several axes; the pooling window), it is that step's declared
    /// primitive, and the planner chooses between it and the region (<see cref="PreferHand"/>).
    /// </summary>
    /// <remarks>
    /// Switches, all read per call, so a benchmark can measure each arrangement in one process:
    /// <see cref="FusedRegion.Enabled"/> off leaves the hand kernels (and the reference where a step has none);
    /// <see cref="HandKernels"/> off leaves the regions; <see cref="MixDispatch.FusedEnabled"/> off runs the reference
    /// expression. A step whose chosen implementation declines (another layout, dtype, no CUDA) takes the other, then the
    /// reference operation, so results always equal the reference modules' up to rounding.
    /// </remarks>
    public static class SubBlockPlanner
    {
        /// <summary>Whether hand-written kernels may run as the planner's primitives (off: regions and library calls only).</summary>
        public static bool HandKernels { get; set; } = true;

        /// <summary>
        /// The declared primitives the planner takes before a region computing the same step: <c>pooling_sub_block</c>
        /// (norm, pooling window and tail in two passes), <c>group_norm1</c>, <c>layer_norm</c> (channels innermost in
        /// memory), <c>bias_activation</c>, <c>scale_residual</c>. A primitive not listed runs only where the region
        /// declines. Kept where the bench (<c>--only fusion</c>) shows the hand kernel faster; see docs/gpu.md.
        /// </summary>
        public static ISet<string> PreferHand { get; } = new HashSet<string>
        {
            "pooling_sub_block", "group_norm1", "layer_norm", "bias_activation", "scale_residual",
        };

        /// <summary>
        /// Regions the default plan does not take while <see cref="HandKernels"/> is on (the hand kernel or the reference
        /// operation runs instead), because the whole model measured slower with them: the channel LayerNorms of NCHW
        /// (<see cref="NchwLayerNorm"/>: <c>layernorm2d</c>, <c>layernorm2d_nobias</c> reading NCHW memory) write NCHW, where the reference's permuted layer_norm leaves
        /// channels-last memory that the following convolutions and hand kernels run faster on (run 14b, H100: ConvFormer-S18
        /// fp32 b32 9.2 ms with the region against 6.3 ms without, although the norm alone is 2.9× faster than the
        /// reference). With <see cref="HandKernels"/> off (the planner alone) every region runs.
        /// </summary>
        public static ISet<string> AvoidRegions { get; } = new HashSet<string> { NchwLayerNorm };

        /// <summary>The <see cref="AvoidRegions"/> entry of the channel LayerNorm regions on NCHW-contiguous memory.</summary>
        public const string NchwLayerNorm = "layernorm2d on NCHW";

        /// <summary>Whether the default plan avoids the region named <paramref name="region"/> now (<see cref="AvoidRegions"/>).</summary>
        public static bool Avoids(string? region) => region is not null && HandKernels && AvoidRegions.Contains(region);

        /// <summary>
        /// Diagnostics (tests, the bench): while set on this thread, every step run appends <c>label: implementation</c>
        /// (<c>hand ...</c>, <c>region ...</c>, <c>library</c> or <c>reference</c>).
        /// </summary>
        public static List<string>? Trace { get => s_trace; set => s_trace = value; }

        [ThreadStatic] private static List<string>? s_trace;

        private sealed record Entry(ResidualParts Parts, SubBlockPlan? Plan);
        private static readonly ConditionalWeakTable<nn.Module, Entry> s_plans = new();
        private static readonly ConditionalWeakTable<nn.Module, SubBlockPlan?[]> s_mixerPlans = new();

        /// <summary>The plan of a residual sub-block, or null when the planner has nothing to fuse in it (the reference runs).</summary>
        /// <param name="parts">The sub-block's layers.</param>
        public static SubBlockPlan? For(ResidualParts parts)
        {
            if (s_plans.TryGetValue(parts.Branch, out var e) && e.Parts == parts) return e.Plan;
            var plan = Build(parts);
            s_plans.AddOrUpdate(parts.Branch, new Entry(parts, plan));
            return plan;
        }

        /// <summary>The plan of a token mixer called alone (a separable convolution), or null.</summary>
        /// <param name="mixer">The mixer.</param>
        public static SubBlockPlan? ForMixer(nn.Module<Tensor, Tensor> mixer)
        {
            var box = s_mixerPlans.GetValue(mixer, m => new[] { KernelModules.SepConvOf(m) is { } sep ? SepConvAlone(sep) : null });
            return box[0];
        }

        /// <summary>The fused result of the sub-block on <paramref name="x"/>, or null (no plan, training, a switch off).</summary>
        /// <param name="parts">The sub-block's layers.</param>
        /// <param name="x">Input (the shortcut).</param>
        public static Tensor? TryRun(ResidualParts parts, Tensor x) => For(parts)?.TryRun(x);

        // ---- building plans -----------------------------------------------------------------------------------------

        private static SubBlockPlan? Build(ResidualParts parts)
        {
            if (!FusedBranches.TryScale(parts.LayerScale, out var ls) || !FusedBranches.TryScale(parts.ResScale, out var rs)) return null;
            var b = new Builder();
            if (KernelModules.PoolSize(parts.Branch) is long k && k % 2 == 1)
            {
                // The pooling span: norm, window, tail; PoolFormer's hand kernel covers all three for GroupNorm(1) + layer scale.
                if (parts.Norm is GroupNorm1 gn && ls is { ChannelsFirst: true } && rs is null && k == 3)
                    b.Span("pooling_sub_block", 3, v => gn is { weight: { } w, bias: { } gb } && v[0]!.dim() == 4
                        ? FusedOps.PoolingSubBlock(v[0]!, w, gb, gn.Eps, ls.scale) : null);
                int n = Norm(b, parts.Norm, 0);
                int p = b.Library($"pool window {k}x{k}", v => Fn.AvgPool2d(v[n]!, k, 1, k / 2, false));
                var tail = EpilogueRegions.PoolTail(ls is not null, rs is not null);
                b.Step("pool - n, scales, residual add", null, null, tail.Name, RegionCall(tail, i => i switch
                {
                    "x" => v => v[0]!,
                    "p" => v => v[p]!,
                    "n" => v => v[n]!,
                    "ls" => ScaleView(ls!),
                    _ => ScaleView(rs!),
                }), v => Add(rs is null ? v[0]! : rs.call(v[0]!), ls is null ? v[p]! - v[n]! : ls.call(v[p]! - v[n]!)));
                return b.Done("pooling sub-block", null);
            }
            if (parts.Branch is Mlp mlp)
            {
                if (mlp.norm is not Identity || !FusedBranches.IsPointwise(mlp.fc1) || !FusedBranches.IsPointwise(mlp.fc2)
                    || mlp.fc1.GetType() != mlp.fc2.GetType()) return null;
                int channelDim = mlp.fc1 is Conv2d ? 1 : -1;
                int n = Norm(b, parts.Norm, 0);
                int h = b.Library("fc1 (bias in the next step)", v => FusedBranches.Project(mlp.fc1, v[n]!));
                int a = BiasAct(b, h, () => FusedBranches.BiasOf(mlp.fc1), mlp.act, channelDim);
                int o = b.Library("fc2 (bias in the next step)", v => FusedBranches.Project(mlp.fc2, v[a]!));
                Residual(b, o, () => FusedBranches.BiasOf(mlp.fc2), ls, rs, channelDim);
                return b.Done("mlp sub-block", mlp);
            }
            if (KernelModules.SepConvOf(parts.Branch) is { } sep)
            {
                int n = Norm(b, parts.Norm, 0);
                int m = SepConvMiddle(b, sep, n);
                int o = b.Library("pwconv2 (bias in the next step)", v => FusedBranches.Project(sep.Pwconv2, v[m]!));
                Residual(b, o, () => sep.Pwconv2.bias, ls, rs, 1);
                return b.Done("sepconv sub-block", sep.Module);
            }
            // Any other branch: the norm and the scales + add; a plain add gains nothing from a kernel of ours.
            if (ls is null && rs is null) return null;
            {
                int n = Norm(b, parts.Norm, 0);
                var branch = parts.Branch;
                int o = parts.BranchIsMixer
                    ? b.Library("token mixer", v => MixDispatch.TokenMixer(branch, v[n]!))
                    : b.Library("branch", v => branch.call(v[n]!));
                int channelDim = (ls ?? rs)!.ChannelsFirst ? 1 : -1;
                Residual(b, o, () => null, ls, rs, channelDim);
                return b.Done("residual sub-block", null);
            }
        }

        private static SubBlockPlan SepConvAlone(SepConvParts sep)
        {
            var b = new Builder();
            int m = SepConvMiddle(b, sep, 0);
            b.Library("pwconv2", v => sep.Pwconv2.forward(v[m]!));
            return b.Done("sepconv", sep.Module);
        }

        /// <summary>pwconv1 without its bias, bias + act1, the depthwise convolution, act2: the value before pwconv2.</summary>
        private static int SepConvMiddle(Builder b, SepConvParts sep, int input)
        {
            int h = b.Library("pwconv1 (bias in the next step)", v => FusedBranches.Project(sep.Pwconv1, v[input]!));
            int a = BiasAct(b, h, () => sep.Pwconv1.bias, sep.Act1, 1);
            int d = b.Library("dwconv", v => sep.Dwconv.forward(v[a]!));
            return sep.Act2 is Identity ? d : b.Library("act2", v => sep.Act2.call(v[d]!));
        }

        /// <summary>The norm step: its region (channel LayerNorms) and its hand kernel, or the module alone.</summary>
        private static int Norm(Builder b, nn.Module<Tensor, Tensor> norm, int x)
        {
            Func<Tensor?[], Tensor> reference = v => norm.call(v[x]!);
            switch (norm)
            {
                case GroupNorm1 g:
                    return b.Step("norm (groupnorm, 1 group)", "group_norm1", v => FusedOps.GroupNorm1(v[x]!, g.weight, g.bias, g.Eps), null, null, reference);
                case GroupNorm1NoBias g:
                    return b.Step("norm (groupnorm, 1 group)", "group_norm1", v => FusedOps.GroupNorm1(v[x]!, g.weight, null, g.Eps), null, null, reference);
                case LayerNorm2d l:
                {
                    var region = (l.bias is null ? NormRegions.LayerNorm2dWeight : NormRegions.LayerNorm2dAffine).Bind(l.Eps);
                    var w = new ChannelView(3);
                    var bias = new ChannelView(3);
                    return b.Step("norm (layernorm over C of NCHW)", "layer_norm",
                        v => v[x]!.dim() == 4 ? FusedOps.LayerNorm(v[x]!, l.weight, l.bias, l.Eps, 1) : null,
                        region.Kernel.Name,
                        v => v[x]!.dim() == 4 && l.weight is { } lw && NormLayoutAllowed(v[x]!)
                            ? (l.bias is { } lb ? region.TryRun(v[x]!, w.Of(lw), bias.Of(lb)) : region.TryRun(v[x]!, w.Of(lw)))
                            : null,
                        reference);
                }
                case LayerNorm2dNoBias l:
                {
                    var region = NormRegions.LayerNorm2dWeight.Bind(l.Eps);
                    var w = new ChannelView(3);
                    return b.Step("norm (layernorm over C of NCHW)", "layer_norm",
                        v => v[x]!.dim() == 4 ? FusedOps.LayerNorm(v[x]!, l.weight, null, l.Eps, 1) : null,
                        region.Kernel.Name,
                        v => v[x]!.dim() == 4 && NormLayoutAllowed(v[x]!) ? region.TryRun(v[x]!, w.Of(l.weight)) : null,
                        reference);
                }
                case LayerNormNoBias l:
                {
                    var region = NormRegions.LayerNormLastWeight.Bind(l.Eps);
                    return b.Step("norm (layernorm over the last axis)", "layer_norm",
                        v => FusedOps.LayerNorm(v[x]!, l.weight, null, l.Eps, -1),
                        region.Kernel.Name, v => region.TryRun(v[x]!, l.weight), reference);
                }
                default:
                    return b.Library("norm (" + norm.GetType().Name + ")", reference);
            }
        }

        /// <summary>
        /// Whether the channel LayerNorm region may take this input: channels-last memory (rows innermost, a warp each,
        /// the output channels-last too), or NCHW memory unless the default plan avoids it there (<see cref="AvoidRegions"/>).
        /// </summary>
        private static bool NormLayoutAllowed(Tensor x) => x.is_contiguous() ? !Avoids(NchwLayerNorm) : IsChannelsLast(x);

        /// <summary>Whether a 4-d tensor's memory is dense channels-last (NHWC).</summary>
        internal static bool IsChannelsLast(Tensor x)
        {
            var s = x.shape;
            var st = x.stride();
            return s.Length == 4 && st[1] == 1 && (s[3] == 1 || st[3] == s[1]) && (s[2] == 1 || st[2] == s[1] * s[3])
                && (s[0] == 1 || st[0] == s[1] * s[2] * s[3]);
        }

        /// <summary><c>act(h + bias)</c>: the planner's region, the hand kernel, or the activation module.</summary>
        private static int BiasAct(Builder b, int h, Func<Tensor?> bias, nn.Module<Tensor, Tensor> act, int channelDim)
        {
            bool known = FusedBranches.TryActivation(act, out var a, out _, out _);
            bool hasBias = bias() is not null;
            var biasView = new ChannelView(channelDim == 1 ? 3 : 1);
            Func<Tensor?[], Tensor> reference = v => bias() is { } bb ? act.call(v[h]! + biasView.Of(bb)) : act.call(v[h]!);
            if (!known) return b.Step("bias + " + act.GetType().Name, null, null, null, null, reference);
            var region = EpilogueRegions.BiasActivation(a, hasBias);
            return b.Step("bias + " + a, "bias_activation",
                v =>
                {
                    FusedBranches.TryActivation(act, out _, out var s, out var t);
                    return FusedOps.BiasActivation(v[h]!, bias(), a, s, t, channelDim);
                },
                region?.Name,
                region is null ? null : RegionCall(region, i => i switch
                {
                    "h" => v => v[h]!,
                    "b" => _ => bias() is { } bb ? biasView.Of(bb) : null,
                    "s" => _ => ((StarReLU)act).scale,
                    _ => _ => ((StarReLU)act).bias,
                }),
                reference);
        }

        /// <summary><c>resScale(x) + layerScale(o + bias)</c>: the planner's region, the hand kernel, or the modules.</summary>
        private static int Residual(Builder b, int o, Func<Tensor?> bias, Scale? ls, Scale? rs, int channelDim)
        {
            var biasView = new ChannelView(channelDim == 1 ? 3 : 1);
            Tensor Branch(Tensor?[] v) => bias() is { } bb ? v[o]! + biasView.Of(bb) : v[o]!;
            Func<Tensor?[], Tensor> reference = v =>
            {
                var branch = Branch(v);
                return Add(rs is null ? v[0]! : rs.call(v[0]!), ls is null ? branch : ls.call(branch));
            };
            var region = EpilogueRegions.Residual(bias() is not null, ls is not null, rs is not null);
            return b.Step("bias, scales, residual add", "scale_residual",
                v => FusedBranches.TryEpilogue(v[0]!, v[o]!, ls, rs, bias(), channelDim),
                region?.Name,
                region is null ? null : RegionCall(region, i => i switch
                {
                    "x" => v => v[0]!,
                    "o" => v => v[o]!,
                    "b" => _ => bias() is { } bb ? biasView.Of(bb) : null,
                    "ls" => ScaleView(ls!),
                    _ => ScaleView(rs!),
                }),
                reference);
        }

        private static Tensor Add(Tensor a, Tensor b) => a + b;

        /// <summary>A scale's vector shaped as the <see cref="Scale"/> module broadcasts it.</summary>
        private static Func<Tensor?[], Tensor?> ScaleView(Scale s)
        {
            var view = new ChannelView(s.ChannelsFirst ? 3 : 1);
            return _ => view.Of(s.scale);
        }

        /// <summary>A region call with its inputs gathered by name (null from a getter: the region declines).</summary>
        private static Func<Tensor?[], Tensor?> RegionCall(EpilogueRegions.Region region, Func<string, Func<Tensor?[], Tensor?>> input)
        {
            var getters = region.Inputs.Select(input).ToArray();
            return v =>
            {
                var xs = new Tensor[getters.Length];
                for (int i = 0; i < xs.Length; i++)
                    if ((xs[i] = getters[i](v)!) is null) return null;
                return region.Bound.TryRun(xs);
            };
        }

        /// <summary>
        /// A per-channel vector viewed as <c>[C, 1, 1]</c> (or kept <c>[C]</c>), made once per tensor: a module's weight is
        /// replaced by a new tensor when the module moves (dtype, device), which makes a new view.
        /// </summary>
        private sealed class ChannelView
        {
            private readonly int _rank;
            private Tensor? _source;
            private IntPtr _handle;
            private Tensor? _view;

            public ChannelView(int rank) => _rank = rank;

            public Tensor Of(Tensor t)
            {
                if (_rank == 1) return t;
                if (!ReferenceEquals(t, _source) || t.Handle != _handle || _view is null || _view.IsInvalid)
                {
                    var view = t.view(t.numel(), 1, 1).DetachFromDisposeScope();
                    _view?.Dispose();
                    (_source, _handle, _view) = (t, t.Handle, view);
                }
                return _view;
            }
        }

        /// <summary>Collects a plan's steps; value 0 is the sub-block's input, step i writes value i + 1.</summary>
        private sealed class Builder
        {
            public readonly List<PlanStep> Steps = new();

            public int Step(string label, string? hand, Func<Tensor?[], Tensor?>? handRun, string? region, Func<Tensor?[], Tensor?>? regionRun,
                Func<Tensor?[], Tensor> reference)
            {
                Steps.Add(new PlanStep(label, hand, handRun, region, regionRun, reference, 0));
                return Steps.Count;
            }

            public int Library(string label, Func<Tensor?[], Tensor> call) => Step(label, null, null, null, null, call);

            /// <summary>A hand kernel that computes the next <paramref name="covers"/> steps at once (their last value).</summary>
            public int Span(string hand, int covers, Func<Tensor?[], Tensor?> run)
            {
                Steps.Add(new PlanStep(hand, hand, run, null, null, null, covers));
                return Steps.Count;
            }

            public SubBlockPlan Done(string name, nn.Module? trainingGuard) => new(name, Steps.ToArray(), trainingGuard);
        }
    }

    /// <summary>
    /// One step of a <see cref="SubBlockPlan"/>: a library call (projection, convolution, pooling window, a module), or
    /// pointwise/norm work with up to three implementations: the planner's region, a declared hand kernel, the
    /// reference operation. A span step is a hand kernel standing for the next <see cref="Covers"/> steps.
    /// </summary>
    public sealed class PlanStep
    {
        internal PlanStep(string label, string? hand, Func<Tensor?[], Tensor?>? handRun, string? region, Func<Tensor?[], Tensor?>? regionRun,
            Func<Tensor?[], Tensor>? reference, int covers)
        {
            Label = label;
            Hand = hand;
            HandRun = handRun;
            Region = region;
            RegionRun = regionRun;
            Reference = reference;
            Covers = covers;
        }

        /// <summary>What the step computes.</summary>
        public string Label { get; }
        /// <summary>The declared hand kernel (primitive) that computes it, or null.</summary>
        public string? Hand { get; }
        /// <summary>The planner's region that computes it, or null (a library call, or work no region expresses).</summary>
        public string? Region { get; }
        /// <summary>For a span: how many following steps the hand kernel replaces (0 for an ordinary step).</summary>
        public int Covers { get; }

        internal Func<Tensor?[], Tensor?>? HandRun { get; }
        internal Func<Tensor?[], Tensor?>? RegionRun { get; }
        internal Func<Tensor?[], Tensor>? Reference { get; }

        /// <inheritdoc/>
        public override string ToString() =>
            Covers > 0 ? $"[{Hand}: the next {Covers} steps in one]"
            : Label + (Region is null && Hand is null ? " (library)" : "") + (Region is null ? "" : $" region {Region}") + (Hand is null ? "" : $" | hand {Hand}");
    }

    /// <summary>A residual sub-block (or a mixer) as the planner runs it: steps over values, the first being the input.</summary>
    public sealed class SubBlockPlan
    {
        private readonly nn.Module? _trainingGuard;

        internal SubBlockPlan(string name, PlanStep[] steps, nn.Module? trainingGuard)
        {
            Name = name;
            Steps = steps;
            _trainingGuard = trainingGuard;
        }

        /// <summary>What the plan computes (for reports).</summary>
        public string Name { get; }

        /// <summary>The steps in order.</summary>
        public IReadOnlyList<PlanStep> Steps { get; }

        /// <summary>The steps, one per line.</summary>
        public string Describe()
        {
            var sb = new StringBuilder(Name).Append(':');
            foreach (var s in Steps) sb.Append("\n  ").Append(s);
            return sb.ToString();
        }

        /// <summary>
        /// Runs the plan on CUDA without gradients (or on the CPU with regions emulated, in tests), or returns null: a
        /// module in training (dropout), gradients needed, or fusion switched off.
        /// </summary>
        /// <param name="x">The input.</param>
        public Tensor? TryRun(Tensor x)
        {
            if ((!x.is_cuda && FusedRegion.Emulator is null) || torch.is_grad_enabled()) return null;
            if (!MixDispatch.FusedEnabled || _trainingGuard is { training: true }) return null;
            using var scope = torch.NewDisposeScope();
            var v = new Tensor?[Steps.Count + 1];
            v[0] = x;
            var trace = SubBlockPlanner.Trace;
            for (int i = 0; i < Steps.Count; i++)
            {
                var s = Steps[i];
                if (s.Covers > 0)
                {
                    if (SubBlockPlanner.HandKernels && SubBlockPlanner.PreferHand.Contains(s.Hand!) && s.HandRun!(v) is Tensor y)
                    {
                        trace?.Add($"{s.Label}: hand");
                        v[i + 1 + s.Covers] = y;
                        i += s.Covers;
                    }
                    continue;
                }
                v[i + 1] = Run(s, v, trace);
            }
            return v[^1]!.MoveToOuterDisposeScope();
        }

        private static Tensor Run(PlanStep s, Tensor?[] v, List<string>? trace)
        {
            bool hand = s.HandRun is not null && SubBlockPlanner.HandKernels;
            bool handFirst = hand && SubBlockPlanner.PreferHand.Contains(s.Hand!);
            if (handFirst && s.HandRun!(v) is Tensor h)
            {
                trace?.Add($"{s.Label}: hand {s.Hand}");
                return h;
            }
            if (s.RegionRun?.Invoke(v) is Tensor r)
            {
                trace?.Add($"{s.Label}: region {s.Region}");
                return r;
            }
            if (hand && !handFirst && s.HandRun!(v) is Tensor h2)
            {
                trace?.Add($"{s.Label}: hand {s.Hand}");
                return h2;
            }
            trace?.Add($"{s.Label}: {(s.Region is null && s.Hand is null ? "library" : "reference")}");
            return s.Reference!(v);
        }
    }
}
