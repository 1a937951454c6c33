using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Caches;
using Mix.Zoo;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Parity;

/// <summary>
/// Training and decoding loops of the zoo's generated models leave no tensors behind: the live count of TorchSharp's
/// <c>DisposeScopeManager.Statistics.ThreadTotalLiveCount</c> does not grow across iterations. The generated
/// <see cref="Patchtsmixer"/> trains in both channel modes; the generated <see cref="Mamba130m"/> decodes token by token
/// through <see cref="CausalModel"/>.
/// </summary>
public sealed class MemoryDisciplineTests
{
    [Theory]
    [InlineData("patchtsmixer_common_channel")]
    [InlineData("patchtsmixer_mix_channel")]
    public void PatchTSMixerTrainingLoopDoesNotLeakTensors(string fixture)
    {
        Patchtsmixer.Options options;
        Tensor pastValues;
        using (var f = HuggingFaceFixture.Open(fixture))
        {
            options = PatchTSMixerParityTests.BuildOptions(f);
            pastValues = f.Read("past_values");
        }
        using var x = pastValues;
        using var model = new Patchtsmixer(options);
        model.train();
        using var optimizer = torch.optim.SGD(model.parameters(), 0.01);

        void Iteration()
        {
            // Module.zero_grad: Optimizer.zero_grad leaves grad wrappers behind in TorchSharp 0.107.
            model.zero_grad();
            // Generated forwards do not scope their intermediates (the hand-written model did), so the loop does.
            using var scope = torch.NewDisposeScope();
            var loss = model.call(x).square().mean();
            loss.backward();
            optimizer.step();
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
        using var ids = f.Read("input_ids");
        var lm = new CausalModel(model, f.Long("vocab_size"));
        using var cache = lm.CreateCache(ids.shape[0]);

        void Token(long t)
        {
            using var scope = torch.NewDisposeScope();
            lm.Forward(ids.narrow(1, t % ids.shape[1], 1), cache);
        }

        for (long t = 0; t < 2; t++) Token(t);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (long t = 2; t < 30; t++) Token(t);
        long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.Equal(before, after);
    }
}
