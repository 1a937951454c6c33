using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Parity;

/// <summary>
/// Live-tensor discipline of the parity models under repeated use, counted with
/// <c>DisposeScopeManager.Statistics.ThreadTotalLiveCount</c>. <see cref="MambaForCausalLM"/> (and with it
/// <see cref="MambaModel"/>) already has a training-loop test in <c>MambaForCausalLMTests</c>; this adds
/// <see cref="PatchTSMixerModel"/> training in both channel modes and Mamba step decoding.
/// </summary>
public sealed class MemoryDisciplineTests
{
    [Theory]
    [InlineData("patchtsmixer_common_channel")]
    [InlineData("patchtsmixer_mix_channel")]
    public void PatchTSMixerTrainingLoopDoesNotLeakTensors(string fixture)
    {
        PatchTSMixerConfig config;
        Tensor pastValues;
        using (var f = HuggingFaceFixture.Open(fixture))
        {
            config = PatchTSMixerParityTests.BuildConfig(f);
            pastValues = f.Read("past_values");
        }
        using var x = pastValues;
        using var model = new PatchTSMixerModel(config);
        model.train();
        using var optimizer = torch.optim.SGD(model.parameters(), 0.01);

        void Iteration()
        {
            // Module.zero_grad: Optimizer.zero_grad leaves grad wrappers behind in TorchSharp 0.107 (see MambaForCausalLMTests).
            model.zero_grad();
            var (hidden, patchInput, loc, scale) = model.ForwardDetailed(x, null);   // no dispose scope on purpose
            var squares = hidden.square();
            var loss = squares.mean();
            loss.backward();
            optimizer.step();
            hidden.Dispose(); patchInput.Dispose(); loc.Dispose(); scale.Dispose(); squares.Dispose(); loss.Dispose();
        }

        for (int i = 0; i < 3; i++) Iteration();   // grads and optimizer state appear here
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 10; i++) Iteration();
        long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.True(after <= before, $"live tensors grew from {before} to {after}");
    }

    [Fact]
    public void MambaStepDecodingDoesNotLeakTensors()
    {
        using var f = HuggingFaceFixture.Open("mamba_causal_lm");
        using var model = MambaParityTests.LoadedLM(f);
        using var noGrad = torch.no_grad();
        var layers = model.Backbone.Layers.ToList();
        using var ids = f.Read("input_ids");
        long batch = ids.shape[0];
        var conv = layers.Select(l => torch.zeros(batch, l.Mixer.IntermediateSize, l.Mixer.ConvKernel)).ToArray();
        var ssm = layers.Select(l => torch.zeros(batch, l.Mixer.IntermediateSize, l.Mixer.StateSize)).ToArray();

        void Token(long t)
        {
            using var scope = torch.NewDisposeScope();
            var h = model.Backbone.Embeddings.forward(ids.select(1, t % ids.shape[1]));
            for (int i = 0; i < layers.Count; i++)
            {
                var (y, c, s) = layers[i].Mixer.Step(layers[i].Norm.forward(h), conv[i], ssm[i]);
                h = h + y;
                conv[i].Dispose(); ssm[i].Dispose();
                conv[i] = c.MoveToOuterDisposeScope();
                ssm[i] = s.MoveToOuterDisposeScope();
            }
        }

        for (long t = 0; t < 2; t++) Token(t);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (long t = 2; t < 30; t++) Token(t);
        long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.Equal(before, after);
        foreach (var t in conv.Concat(ssm)) t.Dispose();
    }
}
