using System;
using Mix.Runtime.Caches;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// The Mamba (S6) token mixer, equivalent to Hugging Face <c>MambaMixer</c> (same math and state-dict keys:
    /// <c>in_proj.weight[/bias]</c>, <c>conv1d.weight[/bias]</c>, <c>x_proj.weight</c>, <c>dt_proj.weight</c>,
    /// <c>dt_proj.bias</c>, <c>A_log</c>, <c>D</c>, <c>out_proj.weight[/bias]</c>).
    /// Shape contract: input <c>[batch, L, hiddenSize]</c> → output <c>[batch, L, hiddenSize]</c>.
    /// Math: <c>x, z = in_proj(h)</c>; <c>x = act(causal depthwise conv1d(x))</c>; <c>dt, B, C = x_proj(x)</c>;
    /// <c>dt = softplus(dt_proj(dt))</c>; <c>A = -exp(A_log)</c>; <c>y = SelectiveScan(x, dt, A, B, C, D) · act(z)</c>;
    /// output <c>out_proj(y)</c>. The scan runs through <see cref="SelectiveScan"/> (fused kernel if installed).
    /// </summary>
    public sealed class MambaMixer : torch.nn.Module<Tensor, Tensor>
    {
        // in_proj, x_proj and out_proj are typed as modules so that weight quantization can swap them
        // (Mix.Runtime.Quantization.Quantizer); dt_proj, A_log, D and conv1d always stay full precision.
        private readonly nn.Module<Tensor, Tensor> in_proj;
        private readonly Conv1d conv1d;
        private readonly nn.Module<Tensor, Tensor> x_proj;
        private readonly Linear dt_proj;
        private readonly Parameter A_log;
        private readonly Parameter D;
        private readonly nn.Module<Tensor, Tensor> out_proj;

        private readonly string hiddenAct;

        /// <summary>Model width (input/output features).</summary>
        public long HiddenSize { get; }

        /// <summary>Inner width <c>d_inner</c> (HF <c>intermediate_size</c>).</summary>
        public long IntermediateSize { get; }

        /// <summary>SSM state size <c>n</c> (HF <c>state_size</c>).</summary>
        public long StateSize { get; }

        /// <summary>Depthwise convolution kernel (HF <c>conv_kernel</c>).</summary>
        public long ConvKernel { get; }

        /// <summary>Rank of the time-step projection (HF <c>time_step_rank</c>).</summary>
        public long TimeStepRank { get; }

        /// <summary>Layer index (HF <c>layer_idx</c>); informational.</summary>
        public int LayerIdx { get; }

        /// <summary>TorchSharp scan algorithm used when no fused kernel applies (default chunked).</summary>
        public SelectiveScanAlgorithm ScanAlgorithm { get; set; } = SelectiveScanAlgorithm.Chunked;

        /// <summary>Chunk length for the chunked scan.</summary>
        public int ScanChunkSize { get; set; } = SelectiveScan.DefaultChunkSize;

        /// <summary>Creates a Mamba mixer with the hyper-parameters of HF <c>MambaConfig</c>.</summary>
        /// <param name="hiddenSize">Model width (HF <c>hidden_size</c>).</param>
        /// <param name="stateSize">SSM state size (HF <c>state_size</c>, default 16).</param>
        /// <param name="convKernel">Causal conv kernel (HF <c>conv_kernel</c>, default 4).</param>
        /// <param name="expand">Expansion factor; <c>intermediate_size = expand · hidden_size</c> (default 2).</param>
        /// <param name="timeStepRank">Rank of <c>dt_proj</c>; ≤ 0 means "auto" = <c>ceil(hidden_size / 16)</c>.</param>
        /// <param name="useBias">Bias in <c>in_proj</c>/<c>out_proj</c> (HF <c>use_bias</c>, default false).</param>
        /// <param name="useConvBias">Bias in <c>conv1d</c> (HF <c>use_conv_bias</c>, default true).</param>
        /// <param name="hiddenAct">Activation: "silu" (default), "gelu" or "relu".</param>
        /// <param name="layerIdx">Layer index (HF <c>layer_idx</c>).</param>
        /// <param name="intermediateSize">Overrides <c>expand · hidden_size</c> when &gt; 0.</param>
        /// <param name="timeStepScale">Scale of the <c>dt_proj.weight</c> init std (HF <c>time_step_scale</c>).</param>
        /// <param name="timeStepMin">Minimum initial time step (HF <c>time_step_min</c>).</param>
        /// <param name="timeStepMax">Maximum initial time step (HF <c>time_step_max</c>).</param>
        /// <param name="timeStepInitScheme">"random" (uniform) or "constant" init of <c>dt_proj.weight</c>.</param>
        /// <param name="timeStepFloor">Floor of the initial time step (HF <c>time_step_floor</c>).</param>
        public MambaMixer(long hiddenSize, long stateSize = 16, long convKernel = 4, long expand = 2,
            long timeStepRank = -1, bool useBias = false, bool useConvBias = true, string hiddenAct = "silu",
            int layerIdx = 0, long intermediateSize = -1, double timeStepScale = 1.0, double timeStepMin = 0.001,
            double timeStepMax = 0.1, string timeStepInitScheme = "random", double timeStepFloor = 1e-4)
            : base(nameof(MambaMixer))
        {
            if (hiddenSize <= 0) throw new ArgumentOutOfRangeException(nameof(hiddenSize));
            if (stateSize <= 0) throw new ArgumentOutOfRangeException(nameof(stateSize));
            if (convKernel <= 0) throw new ArgumentOutOfRangeException(nameof(convKernel));
            HiddenSize = hiddenSize;
            StateSize = stateSize;
            ConvKernel = convKernel;
            IntermediateSize = intermediateSize > 0 ? intermediateSize : expand * hiddenSize;
            TimeStepRank = timeStepRank > 0 ? timeStepRank : (hiddenSize + 15) / 16;
            LayerIdx = layerIdx;
            this.hiddenAct = hiddenAct;
            _ = Activate(hiddenAct, null); // validates the name

            long di = IntermediateSize;
            var inProj = torch.nn.Linear(hiddenSize, 2 * di, hasBias: useBias);
            conv1d = torch.nn.Conv1d(di, di, convKernel, padding: convKernel - 1, groups: di, bias: useConvBias);
            x_proj = torch.nn.Linear(di, TimeStepRank + 2 * stateSize, hasBias: false);
            dt_proj = torch.nn.Linear(TimeStepRank, di, hasBias: true);
            var outProj = torch.nn.Linear(di, hiddenSize, hasBias: useBias);
            in_proj = inProj;
            out_proj = outProj;

            using (torch.no_grad())
            {
                // S4D-real initialisation: A = -[1..n] per channel, stored as A_log = log(1..n).
                var a = torch.arange(1, stateSize + 1, dtype: ScalarType.Float32).unsqueeze(0).expand(di, -1).contiguous();
                A_log = new Parameter(torch.log(a));
                a.Dispose();
                D = new Parameter(torch.ones(di));

                if (useBias)
                {
                    inProj.bias!.zero_();
                    outProj.bias!.zero_();
                }
                if (useConvBias) conv1d.bias!.zero_();

                double dtInitStd = Math.Pow(TimeStepRank, -0.5) * timeStepScale;
                if (timeStepInitScheme == "constant") dt_proj.weight!.fill_(dtInitStd);
                else if (timeStepInitScheme == "random") dt_proj.weight!.uniform_(-dtInitStd, dtInitStd);
                else throw new ArgumentException($"unknown time step init scheme '{timeStepInitScheme}'", nameof(timeStepInitScheme));

                using var scope = torch.NewDisposeScope();
                var dt = torch.exp(torch.rand(di) * (Math.Log(timeStepMax) - Math.Log(timeStepMin)) + Math.Log(timeStepMin))
                    .clamp_min(timeStepFloor);
                // inverse of softplus
                var invDt = dt + torch.log(-torch.expm1(-dt));
                dt_proj.bias!.copy_(invDt);
            }

            RegisterComponents();
        }

        /// <summary>Mixes tokens: <c>[batch, L, hiddenSize]</c> → <c>[batch, L, hiddenSize]</c>.</summary>
        /// <param name="hiddenStates">Input <c>[batch, L, hiddenSize]</c>.</param>
        public override Tensor forward(Tensor hiddenStates)
        {
            using var scope = torch.NewDisposeScope();
            var (y, _, _) = Run(hiddenStates, withState: false);
            return y.MoveToOuterDisposeScope();
        }

        /// <summary>
        /// Forward pass that also returns the decoding cache after the last position: the convolution state
        /// <c>[batch, intermediateSize, convKernel]</c> (last <c>convKernel</c> pre-convolution inputs, zero-padded on the
        /// left) and the SSM state <c>[batch, intermediateSize, stateSize]</c> (float32). Continue with <see cref="Step"/>.
        /// </summary>
        /// <param name="hiddenStates">Input <c>[batch, L, hiddenSize]</c>.</param>
        public (Tensor output, Tensor convState, Tensor ssmState) ForwardWithState(Tensor hiddenStates)
        {
            using var scope = torch.NewDisposeScope();
            var (y, conv, ssm) = Run(hiddenStates, withState: true);
            return (y.MoveToOuterDisposeScope(), conv!.MoveToOuterDisposeScope(), ssm!.MoveToOuterDisposeScope());
        }

        /// <summary>
        /// Cache-aware forward for any number of new tokens (prefill, chunked prefill, decode, speculative verification):
        /// input <c>[batch, n, hiddenSize]</c> continuing the sequence held by <paramref name="slot"/>; returns
        /// <c>[batch, n, hiddenSize]</c> and updates the slot's conv and SSM states and token counts. From an empty
        /// slot, any split of a sequence into calls gives the outputs of one <see cref="forward"/> over the whole sequence.
        /// </summary>
        /// <param name="hiddenStates">New tokens <c>[batch, n, hiddenSize]</c>.</param>
        /// <param name="slot">The layer's cache slot.</param>
        /// <param name="attentionMask">Optional <c>[batch, n]</c> (nonzero = token, 0 = padding). Padded positions get a
        /// zero input and a zero time step, so the SSM state passes them unchanged; with left padding the result equals
        /// the unpadded row's exactly (padding after real tokens still shifts zeros through the conv window).</param>
        public Tensor Forward(Tensor hiddenStates, MambaCacheSlot slot, Tensor? attentionMask = null)
        {
            ArgumentNullException.ThrowIfNull(slot);
            if (hiddenStates.dim() != 3 || hiddenStates.shape[2] != HiddenSize)
                throw new ArgumentException($"expected [batch, n, {HiddenSize}], got [{string.Join(", ", hiddenStates.shape)}]", nameof(hiddenStates));
            slot.CheckStep(hiddenStates.shape[0], hiddenStates.shape[1], attentionMask);   // before the states are overwritten
            long n = hiddenStates.shape[1];
            using var scope = torch.NewDisposeScope();
            var projected = in_proj.forward(hiddenStates).transpose(1, 2);   // [b, 2·di, n]
            var parts = projected.chunk(2, 1);
            var x = parts[0];
            var gate = parts[1];
            Tensor? m = attentionMask is null ? null : attentionMask.to(x.device).ne(0).unsqueeze(1);   // [b, 1, n]
            if (m is not null) x = x * m.to_type(x.dtype);

            var history = torch.cat(new[] { slot.Conv.State.to_type(x.dtype), x }, -1);   // [b, di, K + n]
            var window = history.narrow(-1, 1, ConvKernel - 1 + n);
            var xc = torch.nn.functional.conv1d(window, conv1d.weight!, conv1d.bias, groups: IntermediateSize);
            xc = Activate(hiddenAct, xc)!;
            if (m is not null) xc = xc * m.to_type(xc.dtype);

            var ssmParams = x_proj.forward(xc.transpose(1, 2));
            var split = ssmParams.split(new[] { TimeStepRank, StateSize, StateSize }, -1);
            var dt = torch.matmul(dt_proj.weight!, split[0].transpose(1, 2));
            var dtBias = dt_proj.bias!.to_type(ScalarType.Float32);
            if (m is not null)   // softplus(-1e4) underflows to 0: exp(0·A) = 1 and dt·B·u = 0 keep the state
                dt = torch.where(m, dt, torch.full(new long[] { 1 }, -1e4, dtype: dt.dtype, device: dt.device));
            var A = -torch.exp(A_log.to_type(ScalarType.Float32));
            var (y, last) = SelectiveScan.ScanWithState(xc, dt, A, split[1].transpose(1, 2), split[2].transpose(1, 2),
                D.to_type(ScalarType.Float32), gate, dtBias, deltaSoftplus: true,
                initialState: slot.Ssm.State, algorithm: ScanAlgorithm, chunkSize: ScanChunkSize);
            var output = out_proj.forward(y.transpose(1, 2));

            slot.Conv.Set(history.narrow(-1, n, ConvKernel));
            slot.Ssm.Set(last);
            slot.AdvanceAll(attentionMask, n);
            return output.MoveToOuterDisposeScope();
        }

        /// <summary>
        /// One decoding step (HF <c>slow_forward</c> with a cache, one token): input <c>[batch, hiddenSize]</c>; returns the
        /// output <c>[batch, hiddenSize]</c> and the new conv/SSM states (shapes as in <see cref="ForwardWithState"/>).
        /// The given states are not modified. Zero states start a sequence from scratch.
        /// </summary>
        /// <param name="hiddenStates">The token's hidden state <c>[batch, hiddenSize]</c>.</param>
        /// <param name="convState">Convolution state <c>[batch, intermediateSize, convKernel]</c>.</param>
        /// <param name="ssmState">SSM state <c>[batch, intermediateSize, stateSize]</c>.</param>
        public (Tensor output, Tensor convState, Tensor ssmState) Step(Tensor hiddenStates, Tensor convState, Tensor ssmState)
        {
            if (hiddenStates.dim() != 2 || hiddenStates.shape[1] != HiddenSize)
                throw new ArgumentException($"expected [batch, {HiddenSize}], got [{string.Join(", ", hiddenStates.shape)}]", nameof(hiddenStates));
            using var scope = torch.NewDisposeScope();
            var parts = in_proj.forward(hiddenStates).chunk(2, -1);  // [b, di] each
            var x = parts[0];
            var gate = parts[1];

            var newConv = torch.cat(new[] { convState.narrow(-1, 1, ConvKernel - 1).to_type(x.dtype), x.unsqueeze(-1) }, -1);
            var xc = (newConv * conv1d.weight!.squeeze(1)).sum(-1);
            if (conv1d.bias is not null) xc = xc + conv1d.bias;
            xc = Activate(hiddenAct, xc)!;

            var ssmParams = x_proj.forward(xc);
            var split = ssmParams.split(new[] { TimeStepRank, StateSize, StateSize }, -1);
            var dt = torch.matmul(split[0], dt_proj.weight!.t());      // bias added inside the scan
            var A = -torch.exp(A_log.to_type(ScalarType.Float32));
            var (y, newSsm) = SelectiveScan.Step(ssmState, xc, dt, A, split[1], split[2], D.to_type(ScalarType.Float32),
                gate, dt_proj.bias!.to_type(ScalarType.Float32), deltaSoftplus: true);
            var output = out_proj.forward(y);
            return (output.MoveToOuterDisposeScope(), newConv.MoveToOuterDisposeScope(), newSsm.MoveToOuterDisposeScope());
        }

        private (Tensor y, Tensor? convState, Tensor? ssmState) Run(Tensor hiddenStates, bool withState)
        {
            if (hiddenStates.dim() != 3 || hiddenStates.shape[2] != HiddenSize)
                throw new ArgumentException($"expected [batch, L, {HiddenSize}], got [{string.Join(", ", hiddenStates.shape)}]", nameof(hiddenStates));
            long L = hiddenStates.shape[1];

            var projected = in_proj.forward(hiddenStates).transpose(1, 2);  // [b, 2·di, L]
            var parts = projected.chunk(2, 1);
            var x = parts[0];
            var gate = parts[1];

            Tensor? convState = null;
            if (withState)
            {
                convState = L >= ConvKernel
                    ? x.narrow(-1, L - ConvKernel, ConvKernel).contiguous()
                    : torch.nn.functional.pad(x, new[] { ConvKernel - L, 0L });
            }

            x = Activate(hiddenAct, conv1d.forward(x).narrow(-1, 0, L))!;   // causal depthwise conv

            var ssmParams = x_proj.forward(x.transpose(1, 2));               // [b, L, R + 2n]
            var split = ssmParams.split(new[] { TimeStepRank, StateSize, StateSize }, -1);
            var dt = torch.matmul(dt_proj.weight!, split[0].transpose(1, 2)); // [b, di, L]; bias added inside the scan
            var A = -torch.exp(A_log.to_type(ScalarType.Float32));

            var (y, last) = SelectiveScan.ScanWithState(x, dt, A, split[1].transpose(1, 2), split[2].transpose(1, 2),
                D.to_type(ScalarType.Float32), gate, dt_proj.bias!.to_type(ScalarType.Float32), deltaSoftplus: true,
                initialState: null, algorithm: ScanAlgorithm, chunkSize: ScanChunkSize);

            var output = out_proj.forward(y.transpose(1, 2));
            return (output, convState, withState ? last : null);
        }

        private static Tensor? Activate(string name, Tensor? x) => name switch
        {
            "silu" or "swish" => x is null ? null : torch.nn.functional.silu(x),
            "gelu" => x is null ? null : torch.nn.functional.gelu(x),
            "relu" => x is null ? null : torch.nn.functional.relu(x),
            _ => throw new ArgumentException($"unsupported activation '{name}'", nameof(name)),
        };
    }
}
