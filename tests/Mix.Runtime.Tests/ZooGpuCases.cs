using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// One small, buildable configuration and a batch-1 input for every model the zoo registry lists, for the GPU numerics
/// test (<see cref="FusedRegionGpuTests"/>). The case list is <see cref="Models.List"/> itself, so a new zoo model is a
/// case the moment it is registered: a model named in <see cref="Small"/> gets its reduced configuration and odd input
/// there; any other model gets the generic recipe of its task (an image model at its default configuration and the
/// registry's input size, a language model with the usual width/depth parameters shrunk where it has them). A task
/// without a generic recipe has no case, and <c>ZooGpuCaseTests</c> (CPU) fails naming it.
/// </summary>
internal static class ZooGpuCases
{
    private static Dictionary<string, object?> O(params (string Key, object? Value)[] kv) => kv.ToDictionary(p => p.Key, p => p.Value);

    private static Func<Tensor> Image(long h, long w) => () => torch.randn(1, 3, h, w);
    private static Func<Tensor> Tokens(long vocab, long length) => () => torch.randint(0, vocab, new long[] { 1, length });
    private static Func<Tensor> Series(long length, long channels) => () => torch.randn(1, length, channels);

    private sealed record Case(Dictionary<string, object?> Overrides, Func<Tensor> Input, long? NumClasses = 11);

    // Odd spatial sizes where the model takes any size (75×91: stages of 19×23, 10×12, 5×6, 3×3 after the usual
    // /4, /2, /2, /2), odd sequence lengths (37, 33) and chunk sizes that split them unevenly; models whose input size
    // is a parameter at a small one; a model fixed to one size (randformer's token-count mixer, the named variants
    // that take only num_classes) at that size.
    private static readonly Dictionary<string, Case> Small = new(StringComparer.Ordinal)
    {
        ["poolformer_s12"] = new(O(), Image(75, 91)),
        ["poolformer_s24"] = new(O(), Image(75, 91)),
        ["poolformer_s36"] = new(O(), Image(75, 91)),
        ["convformer_s18"] = new(O(), Image(75, 91)),
        ["caformer_s18"] = new(O(), Image(75, 91)),
        ["identityformer_s12"] = new(O(), Image(67, 67)),
        ["randformer_s12"] = new(O(), Image(224, 224)),
        ["dsm_s12"] = new(O(("dims", new[] { 16, 32, 48, 64 }), ("depths", new[] { 1, 1, 2, 1 })), Image(224, 224)),
        ["metaformer"] = new(O(("depths", new[] { 1, 1, 2, 1 })), Image(75, 91)),
        ["mambaout"] = new(O(("depths", new[] { 1, 1, 2, 1 })), Image(75, 91)),
        ["mambaout_femto"] = new(O(), Image(75, 91)),
        ["mambaout_kobe"] = new(O(), Image(75, 91)),
        ["mambaout_tiny"] = new(O(), Image(75, 91)),
        ["mambaout_small"] = new(O(), Image(75, 91)),
        ["mambaout_base"] = new(O(), Image(75, 91)),
        ["rcvit"] = new(O(("layers", new[] { 1, 1, 2, 1 })), Image(75, 91)),
        ["rcvit_xs"] = new(O(), Image(75, 91)),
        ["rcvit_s"] = new(O(), Image(75, 91)),
        ["rcvit_m"] = new(O(), Image(75, 91)),
        ["rcvit_t"] = new(O(), Image(75, 91)),
        ["ffnet"] = new(O(("depth", new[] { 1, 1, 2, 1 })), Image(75, 91)),
        ["ffnet_1"] = new(O(), Image(75, 91)),
        ["ffnet_2"] = new(O(), Image(75, 91)),
        ["ffnet_3"] = new(O(), Image(75, 91)),
        ["ffnet_4"] = new(O(), Image(75, 91)),
        ["iformer"] = new(O(("img_size", 64), ("depths", new[] { 1, 1, 2, 1 }), ("attention_heads", new[] { 1, 1, 3, 7, 9 })), Image(64, 64)),
        ["iformer_small"] = new(O(), Image(224, 224)),
        ["iformer_base"] = new(O(), Image(224, 224)),
        ["iformer_large"] = new(O(), Image(224, 224)),
        ["iformer_small_384"] = new(O(), Image(384, 384)),
        ["iformer_base_384"] = new(O(), Image(384, 384)),
        ["iformer_large_384"] = new(O(), Image(384, 384)),
        ["ms_mlp"] = new(O(("img_size", 64), ("depths", new[] { 1, 1, 2, 1 })), Image(64, 64)),
        ["ms_mlp_tiny"] = new(O(("img_size", 96)), Image(96, 96)),
        ["ms_mlp_small"] = new(O(("img_size", 96)), Image(96, 96)),
        ["ms_mlp_base"] = new(O(("img_size", 96)), Image(96, 96)),
        ["efficientvim"] = new(O(("img_size", 128), ("embed_dim", new[] { 32, 48, 64 }), ("depths", new[] { 1, 1, 1 })), Image(128, 128)),
        ["efficientvim_m1"] = new(O(("img_size", 224)), Image(224, 224)),
        ["vim2_t"] = new(O(("img_size", 64), ("dims", new[] { 32, 64, 96, 128 }), ("depths", new[] { 1, 1, 1, 1 })), Image(64, 64)),
        ["mixer_s16_224"] = new(O(("img_size", 48), ("dim", 64), ("depth", 2)), Image(48, 48)),
        ["raft_mlp"] = new(O(("pretrained_image_size", 64), ("dims", new[] { 16, 32, 48, 64 }), ("depths", new[] { 1, 1, 1, 1 })), () => torch.randn(1, 3, 64, 64)),
        ["raft_mlp_s"] = new(O(), Image(224, 224)),
        ["raft_mlp_m"] = new(O(("pretrained_image_size", 64)), Image(64, 64)),
        ["raft_mlp_l"] = new(O(("pretrained_image_size", 64)), Image(64, 64)),
        ["mamba_130m"] = new(O(("vocab_size", 97), ("d_model", 64), ("n_layer", 2)), Tokens(97, 37), null),
        ["mamba2_lm"] = new(O(("vocab_size", 97), ("d_model", 64), ("n_layer", 2), ("d_state", 16), ("chunk_size", 16)), Tokens(97, 37), null),
        ["gla_lm"] = new(O(("vocab_size", 97), ("d_model", 64), ("n_layer", 2)), Tokens(97, 37), null),
        ["hybrid_lm"] = new(O(("vocab_size", 97), ("d_model", 64), ("n_layer", 4)), Tokens(97, 37), null),
        ["hydra_bert"] = new(O(("vocab_size", 97), ("hidden_size", 64), ("num_hidden_layers", 2), ("d_state", 16), ("headdim", 16), ("chunk_size", 16)), Tokens(97, 37), null),
        ["m2_bert"] = new(O(("vocab_size", 97), ("hidden_size", 64), ("num_hidden_layers", 2), ("intermediate_size", 128), ("hyena_filter_order", 16)), Tokens(97, 37), null),
        ["lmu_former"] = new(O(("in_channels", 16), ("num_classes", 5), ("embed_dims", 32)), Series(37, 16), null),
        ["tsm2"] = new(O(("seq_len", 33), ("pred_len", 11), ("channels", 5)), Series(33, 5), null),
        ["softs"] = new(O(("seq_len", 33), ("pred_len", 11), ("enc_in", 5), ("d_model", 64), ("d_core", 32), ("d_ff", 96)), Series(33, 5), null),
        ["tsmixer"] = new(O(("seq_len", 33), ("pred_len", 11), ("channels", 5)), Series(33, 5), null),
        ["patchtsmixer"] = new(O(), Series(32, 3), null),
        ["patchtsmixer_mix_channel"] = new(O(), Series(32, 3), null),
        ["ponet_lra"] = new(O(("max_seq_len", 64), ("segment_num", 8)), Tokens(32, 37)),
        ["ponet_lra_listops"] = new(O(), Tokens(32, 37)),
    };

    /// <summary>The registered names (the GPU test's case list).</summary>
    public static IReadOnlyList<string> Names => Models.List();

    /// <summary>The names <see cref="Small"/> configures (to catch a stale entry after a rename).</summary>
    public static IReadOnlyCollection<string> Configured => Small.Keys;

    /// <summary>How a model's case is made, or null where neither the table nor a generic recipe covers it.</summary>
    public static string? Recipe(string name)
    {
        if (Small.ContainsKey(name)) return "configured";
        return Generic(Models.Info(name)) is null ? null : "generic " + Models.Info(name).Task;
    }

    /// <summary>Builds the model (random weights, float32, CPU) and its batch-1 input.</summary>
    public static (nn.Module<Tensor, Tensor> Model, Tensor Input) Build(string name)
    {
        var c = Small.TryGetValue(name, out var configured) ? configured
            : Generic(Models.Info(name)) ?? throw new InvalidOperationException($"{name}: no GPU case (task {Models.Info(name).Task}); add one to ZooGpuCases.Small");
        var model = Models.Create(name, new ModelOptions { NumClasses = c.NumClasses, Overrides = c.Overrides });
        return (model, c.Input());
    }

    private static Case? Generic(ModelInfo info)
    {
        var parameters = Models.Parameters(info.Name).ToHashSet(StringComparer.Ordinal);
        Dictionary<string, object?> Shrink(params (string Key, object? Value)[] kv) =>
            kv.Where(p => parameters.Contains(p.Key)).ToDictionary(p => p.Key, p => p.Value);
        switch (info.Task)
        {
            case "image-classification" when info.InputSize is { Count: 3 } size:
                return new(new(), () => torch.randn(1, size[0], size[1], size[2]), parameters.Contains("num_classes") ? 11 : null);
            case "causal-lm" or "fill-mask" or "feature-extraction" or "text-classification" when parameters.Contains("vocab_size"):
                return new(Shrink(("vocab_size", 97), ("d_model", 64), ("hidden_size", 64), ("n_layer", 2), ("num_hidden_layers", 2)), Tokens(97, 37),
                    parameters.Contains("num_classes") ? 11 : null);
            default:
                return null;
        }
    }
}
