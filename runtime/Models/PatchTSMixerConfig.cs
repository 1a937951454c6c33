using System;

namespace Mix.Runtime
{
    /// <summary>
    /// Hyper-parameters of the PatchTSMixer modules, mirroring Hugging Face <c>PatchTSMixerConfig</c> (same defaults;
    /// property <c>X</c> corresponds to HF field <c>x</c> in snake case, e.g. <see cref="ContextLength"/> =
    /// <c>context_length</c>). Only the fields the backbone uses are present (no masking or head settings).
    /// </summary>
    public sealed class PatchTSMixerConfig
    {
        /// <summary>Input length (HF <c>context_length</c>, default 32).</summary>
        public long ContextLength { get; init; } = 32;

        /// <summary>Patch length (HF <c>patch_length</c>, default 8).</summary>
        public long PatchLength { get; init; } = 8;

        /// <summary>Number of input channels (HF <c>num_input_channels</c>, default 1).</summary>
        public long NumInputChannels { get; init; } = 1;

        /// <summary>Stride between patches (HF <c>patch_stride</c>, default 8).</summary>
        public long PatchStride { get; init; } = 8;

        /// <summary>Hidden width (HF <c>d_model</c>, default 8).</summary>
        public long DModel { get; init; } = 8;

        /// <summary>MLP expansion factor (HF <c>expansion_factor</c>, default 2).</summary>
        public long ExpansionFactor { get; init; } = 2;

        /// <summary>Number of mixer layers (HF <c>num_layers</c>, default 3).</summary>
        public int NumLayers { get; init; } = 3;

        /// <summary>Dropout in the MLPs (HF <c>dropout</c>, default 0.2).</summary>
        public double Dropout { get; init; } = 0.2;

        /// <summary>"common_channel" (default) or "mix_channel" (adds the channel feature mixer) (HF <c>mode</c>).</summary>
        public string Mode { get; init; } = "common_channel";

        /// <summary>Use gated attention <c>softmax(W·x + b) ⊙ x</c> after the MLPs (HF <c>gated_attn</c>, default true).</summary>
        public bool GatedAttn { get; init; } = true;

        /// <summary>"LayerNorm" (default) or "BatchNorm" (HF <c>norm_mlp</c>).</summary>
        public string NormMlp { get; init; } = "LayerNorm";

        /// <summary>Add the tiny self-attention branch in the patch mixer (HF <c>self_attn</c>, default false).</summary>
        public bool SelfAttn { get; init; }

        /// <summary>Heads of the tiny self-attention (HF <c>self_attn_heads</c>, default 1).</summary>
        public long SelfAttnHeads { get; init; } = 1;

        /// <summary>Add a positional encoding after the patcher (HF <c>use_positional_encoding</c>, default false).</summary>
        public bool UsePositionalEncoding { get; init; }

        /// <summary>"sincos" (default, fixed) or "random" (learned) (HF <c>positional_encoding_type</c>).</summary>
        public string PositionalEncodingType { get; init; } = "sincos";

        /// <summary>"std" (default), "mean", or "none"/null for no scaling (HF <c>scaling</c>).</summary>
        public string? Scaling { get; init; } = "std";

        /// <summary>Normalisation epsilon (HF <c>norm_eps</c>, default 1e-5).</summary>
        public double NormEps { get; init; } = 1e-5;

        /// <summary>Number of patches: <c>(max(context_length, patch_length) - patch_length) / patch_stride + 1</c>.</summary>
        public long NumPatches => (Math.Max(ContextLength, PatchLength) - PatchLength) / PatchStride + 1;

        /// <summary>Throws if the configuration is inconsistent.</summary>
        public void Validate()
        {
            if (ContextLength <= PatchLength)
                throw new ArgumentException($"context_length ({ContextLength}) has to be greater than patch_length ({PatchLength})");
            if (PatchStride <= 0 || PatchLength <= 0 || DModel <= 0 || NumInputChannels <= 0 || ExpansionFactor <= 0)
                throw new ArgumentException("patch_stride, patch_length, d_model, num_input_channels and expansion_factor must be positive");
            if (Mode != "common_channel" && Mode != "mix_channel")
                throw new ArgumentException($"mode must be \"common_channel\" or \"mix_channel\", got '{Mode}'");
            if (SelfAttn && DModel % SelfAttnHeads != 0)
                throw new ArgumentException($"d_model ({DModel}) must be divisible by self_attn_heads ({SelfAttnHeads})");
        }
    }
}
