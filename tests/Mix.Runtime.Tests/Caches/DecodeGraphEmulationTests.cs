using System;
using Mix.Runtime.Caches;
using Mix.Runtime.Cuda;
using TorchSharp;
using Xunit;

namespace Mix.Runtime.Tests.Caches;

/// <summary>
/// The decoding graphs' orchestration on the CPU (<see cref="DecodeGraphScenarios"/>, fp32): an emulated recorder
/// stands for <see cref="CapturedGraph"/> — recording keeps the step's body, a replay runs it again with
/// <see cref="CapturedGraph.IsRecording"/> true (state writes held and copied back into the buffers read, KV slots on
/// their fixed-shape recorded step at the position set before the replay, layers left out of the graph run where they
/// are met) — so everything around the graph is checked where no GPU is: buffers owned by the graph, adoption after a
/// prefill, host bookkeeping after the replay, new recordings when a KV buffer grows, masks, generation.
/// </summary>
public sealed class DecodeGraphEmulationTests : IDisposable
{
    public DecodeGraphEmulationTests() => StepRecorders.Override = _ => new EmulatedRecorder();

    public void Dispose() => StepRecorders.Override = null;

    [Theory]
    [InlineData("mamba2_lm", 1, "full")]
    [InlineData("mamba2_lm", 3, "full")]
    [InlineData("gla_lm", 1, "full")]
    [InlineData("gla_lm", 3, "full")]
    [InlineData("hybrid_lm", 1, "full")]
    [InlineData("hybrid_lm", 3, "full")]
    [InlineData("hybrid_lm", 2, "small")]
    [InlineData("hybrid_lm", 2, "window")]
    [InlineData("hybrid_lm", 2, "kivi4")]
    public void Recorded_steps_equal_eager_steps_and_the_full_forward(string name, int batch, string kv) =>
        DecodeGraphScenarios.RecordedStepsEqualEagerSteps(name, "f32", batch, kv, torch.CPU, emulated: true);

    [Theory]
    [InlineData("mamba2_lm")]
    [InlineData("gla_lm")]
    [InlineData("hybrid_lm")]
    public void Padded_rows_replay_a_graph_of_their_own(string name) =>
        DecodeGraphScenarios.PaddedRowsReplayAGraphOfTheirOwn(name, torch.CPU);

    [Theory]
    [InlineData("mamba2_lm")]
    [InlineData("gla_lm")]
    [InlineData("hybrid_lm")]
    public void Generation_with_graphs_gives_the_eager_tokens(string name) =>
        DecodeGraphScenarios.GenerationGivesTheEagerTokens(name, torch.CPU);
}
