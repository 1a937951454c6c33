using Mix.Runtime.Caches;
using Xunit;

namespace Mix.Runtime.Tests.Caches;

/// <summary>
/// One-token decoding steps recorded as CUDA graphs (<see cref="CausalModel.CudaGraphs"/>) in the zoo's Mamba-2, GLA and
/// hybrid language models (<see cref="DecodeGraphScenarios"/>): the same kernels in the recorded order, so the graph's
/// logits equal the eager steps'; the hybrid LM is one graph with its full-precision KV caches (a buffer that grows
/// makes a new recording), three segments with a windowed or quantized cache, whose attention layers run eagerly
/// between them.
/// </summary>
[Trait("Category", "Gpu")]
[Collection(nameof(FusedSwitchCollection))]
public class DecodeGraphGpuTests
{
    [Theory]
    [InlineData("mamba2_lm", "f32", 1, "full")]
    [InlineData("mamba2_lm", "f32", 3, "full")]
    [InlineData("mamba2_lm", "bf16", 2, "full")]
    [InlineData("gla_lm", "f32", 1, "full")]
    [InlineData("gla_lm", "f32", 3, "full")]
    [InlineData("gla_lm", "bf16", 2, "full")]
    [InlineData("hybrid_lm", "f32", 1, "full")]     // its KV caches recorded too: one graph
    [InlineData("hybrid_lm", "f32", 3, "full")]
    [InlineData("hybrid_lm", "bf16", 2, "full")]
    [InlineData("hybrid_lm", "f32", 2, "small")]    // KV buffers of 4 positions: they grow, the step is recorded again
    [InlineData("hybrid_lm", "f32", 2, "window")]   // a sliding window is left out of the graph: three segments
    [InlineData("hybrid_lm", "f32", 2, "kivi4")]    // so is a quantized cache
    public void Recorded_steps_equal_eager_steps_and_the_full_forward(string name, string dtype, int batch, string kv)
    {
        Gpu.Require();
        DecodeGraphScenarios.RecordedStepsEqualEagerSteps(name, dtype, batch, kv, Gpu.Device, emulated: false);
    }

    [Theory]
    [InlineData("mamba2_lm")]
    [InlineData("gla_lm")]
    [InlineData("hybrid_lm")]
    public void Padded_rows_replay_a_graph_of_their_own(string name)
    {
        Gpu.Require();
        DecodeGraphScenarios.PaddedRowsReplayAGraphOfTheirOwn(name, Gpu.Device);
    }

    [Theory]
    [InlineData("mamba2_lm")]
    [InlineData("gla_lm")]
    [InlineData("hybrid_lm")]
    public void Generation_with_graphs_gives_the_eager_tokens(string name)
    {
        Gpu.Require();
        DecodeGraphScenarios.GenerationGivesTheEagerTokens(name, Gpu.Device);
    }
}
