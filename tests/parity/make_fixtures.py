#!/usr/bin/env python3
"""Builds small Hugging Face reference models with random weights and records their inputs and outputs.

For each fixture NAME it writes, into --out (default: tests/Mix.Runtime.Tests/Fixtures/parity):
  NAME.weights.safetensors  the model's state_dict with the exact Hugging Face keys (tied tensors stored as copies)
  NAME.io.safetensors       inputs and outputs (input_ids / past_values, last_hidden_state, logits, hidden_states.i, ...)
  NAME.config.json          the model config plus how the fixture was made (class, seed, versions, input shapes)

Everything runs in fp32, eval mode, on the CPU, from a fixed seed. Parameters are re-drawn explicitly (A_log, D,
dt_proj biases, norm weights and biases included) so that parity tests cannot pass on trivial initial values.
Needs torch, transformers (5.x; 4.x should work) and safetensors; no network access.
"""
import argparse
import json
import math
import os
import sys
import traceback

import torch
from safetensors.torch import load_file, save_file

SEED = 1234


def randomize_(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Re-draw every parameter from explicit distributions, including the ones HF initialises to constants."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            def randn(scale=1.0, shift=0.0):
                return torch.randn(p.shape, generator=generator, dtype=p.dtype) * scale + shift

            if name.endswith("A_log"):
                # A = -exp(A_log) with A in [1, 16]: a spread of decay rates per state.
                a = torch.rand(p.shape, generator=generator, dtype=p.dtype) * 15.0 + 1.0
                p.copy_(torch.log(a))
            elif name.endswith("mixer.D"):
                p.copy_(randn(0.5, 1.0))
            elif name.endswith("dt_proj.bias"):
                # softplus(bias) = dt, with dt log-uniform in [1e-3, 1e-1] (Mamba's own scheme, but random here).
                u = torch.rand(p.shape, generator=generator, dtype=p.dtype)
                dt = torch.exp(u * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
                p.copy_(dt + torch.log(-torch.expm1(-dt)))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(randn(0.2, 1.0))
            elif name.endswith("bias"):
                p.copy_(randn(0.1))
            elif p.dim() >= 2:
                fan_in = p.numel() // p.shape[0]
                p.copy_(randn(1.0 / math.sqrt(fan_in)))
            else:
                p.copy_(randn(0.5))


def state_dict_copy(model: torch.nn.Module) -> dict:
    # safetensors refuses tensors that share memory (tied embeddings): store independent contiguous copies.
    return {k: v.detach().to(torch.float32 if v.is_floating_point() else v.dtype).contiguous().clone()
            for k, v in model.state_dict().items()}


def versions() -> dict:
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__}


def write_fixture(out_dir, name, model, inputs: dict, outputs: dict, extra: dict) -> None:
    weights = state_dict_copy(model)
    meta = {"fixture": name, "class": type(model).__name__, "seed": str(SEED), **versions()}
    save_file(weights, os.path.join(out_dir, f"{name}.weights.safetensors"), metadata=meta)
    io = {k: v.detach().contiguous().clone() for k, v in {**inputs, **outputs}.items()}
    save_file(io, os.path.join(out_dir, f"{name}.io.safetensors"), metadata=meta)
    config = json.loads(model.config.to_json_string())
    info = {
        "fixture": name,
        "class": type(model).__name__,
        "seed": SEED,
        "dtype": "float32",
        "device": "cpu",
        "mode": "eval",
        **versions(),
        "inputs": {k: list(v.shape) for k, v in inputs.items()},
        "outputs": {k: list(v.shape) for k, v in outputs.items()},
        "weights": {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in sorted(weights.items())},
        **extra,
        "config": config,
    }
    with open(os.path.join(out_dir, f"{name}.config.json"), "w") as f:
        json.dump(info, f, indent=2, sort_keys=False)
        f.write("\n")
    print(f"[{name}] {type(model).__name__}: {len(weights)} weights, io keys {sorted(io)}")


def check_reload(model_cls, config, out_dir, name, run) -> None:
    """Loads the written weights into a fresh model (strict) and checks the outputs are reproduced exactly."""
    fresh = model_cls(config).eval()
    weights = load_file(os.path.join(out_dir, f"{name}.weights.safetensors"))
    missing, unexpected = fresh.load_state_dict(weights, strict=True)
    io = load_file(os.path.join(out_dir, f"{name}.io.safetensors"))
    outputs = run(fresh, io)
    for k, v in outputs.items():
        if not torch.equal(v, io[k]):
            raise AssertionError(f"{name}: reloaded model does not reproduce {k} (max diff {(v - io[k]).abs().max()})")
    print(f"[{name}] reload check passed ({len(outputs)} outputs bit-identical)")


def mamba_config():
    from transformers import MambaConfig
    return MambaConfig(
        vocab_size=64, hidden_size=32, state_size=8, num_hidden_layers=2, conv_kernel=4, expand=2,
        use_bias=False, use_conv_bias=True, time_step_rank="auto", residual_in_fp32=True,
        layer_norm_epsilon=1e-5, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )


def make_mamba(out_dir, causal: bool) -> None:
    from transformers import MambaForCausalLM, MambaModel
    cls = MambaForCausalLM if causal else MambaModel
    name = "mamba_causal_lm" if causal else "mamba_model"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    config = mamba_config()
    model = cls(config).eval()
    randomize_(model, g)
    if causal and getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()  # keep lm_head == embeddings after re-drawing, as HF would
    input_ids = torch.randint(0, config.vocab_size, (2, 7), generator=g, dtype=torch.long)

    def run(m, io):
        with torch.no_grad():
            out = m(input_ids=io["input_ids"], output_hidden_states=True, use_cache=False)
        result = {f"hidden_states.{i}": h for i, h in enumerate(out.hidden_states)}
        if causal:
            result["logits"] = out.logits
        else:
            result["last_hidden_state"] = out.last_hidden_state
        return result

    outputs = run(model, {"input_ids": input_ids})
    extra = {"tie_word_embeddings": bool(getattr(model.config, "tie_word_embeddings", False)),
             "hidden_states_note": "hidden_states.i is element i of the tuple HF returns with output_hidden_states=True "
                                   "(transformers 5.x: each layer's output, then the output after norm_f)"}
    write_fixture(out_dir, name, model, {"input_ids": input_ids}, outputs, extra)
    check_reload(cls, config, out_dir, name, run)


def make_patchtsmixer(out_dir, mode: str) -> None:
    from transformers import PatchTSMixerConfig, PatchTSMixerModel
    name = f"patchtsmixer_{mode}"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    config = PatchTSMixerConfig(
        context_length=32, patch_length=8, patch_stride=8, num_input_channels=3, d_model=16, num_layers=2,
        mode=mode, gated_attn=True, expansion_factor=2, dropout=0.0, head_dropout=0.0, norm_mlp="LayerNorm",
        self_attn=False, use_positional_encoding=False, scaling="std",
    )
    model = PatchTSMixerModel(config).eval()
    randomize_(model, g)
    t = torch.arange(32, dtype=torch.float32).view(1, 32, 1)
    past_values = (torch.randn((2, 32, 3), generator=g) * 2.0 + 0.5 + torch.sin(t / 3.0)).contiguous()

    def run(m, io):
        with torch.no_grad():
            out = m(past_values=io["past_values"], output_hidden_states=True)
        result = {"last_hidden_state": out.last_hidden_state}
        for key in ("patch_input", "loc", "scale"):
            value = getattr(out, key, None)
            if isinstance(value, torch.Tensor):
                result[key] = value
        for i, h in enumerate(out.hidden_states or ()):
            result[f"hidden_states.{i}"] = h
        return result

    outputs = run(model, {"past_values": past_values})
    write_fixture(out_dir, name, model, {"past_values": past_values}, outputs, {})
    check_reload(PatchTSMixerModel, config, out_dir, name, run)


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "Mix.Runtime.Tests", "Fixtures", "parity"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    print("versions:", versions(), "python", sys.version.split()[0])

    failures = 0
    for make in (lambda: make_mamba(args.out, causal=False),
                 lambda: make_mamba(args.out, causal=True),
                 lambda: make_patchtsmixer(args.out, "common_channel"),
                 lambda: make_patchtsmixer(args.out, "mix_channel")):
        try:
            make()
        except Exception:  # keep going: one broken fixture should not cost the others
            failures += 1
            traceback.print_exc()
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"wrote {len(os.listdir(args.out))} files, {total} bytes, into {args.out}; failures: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
