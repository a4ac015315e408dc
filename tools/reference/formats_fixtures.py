#!/usr/bin/env python3
"""Reference fixtures for src/formats/: safetensors files written by the
`safetensors` package, and tiny GGUF LLaMA files written by the `gguf`
package.  Nothing expected here comes from libinternlm.

    /work/ref-venv/bin/python tools/reference/formats_fixtures.py

Writes under tests/fixtures/formats/:
  st_mixed.safetensors + .json   F32, F16, BF16, I64, U8, BOOL, F64 tensors
                                 (a scalar and an empty one among them) and
                                 two metadata keys; the .json holds what the
                                 package reads back: per tensor dtype, shape
                                 and the data's bytes in hex, and the metadata
  st_float.safetensors           F32, F16 and BF16 tensors with metadata
                                 {"format": "pt"}: our writer, given the same
                                 tensors in the file's order, must produce
                                 these exact bytes
  st_sharded/                    a 2-shard checkpoint (model-0000k-of-00002.
                                 safetensors + model.safetensors.index.json
                                 laid out as transformers' save_pretrained
                                 does); st_sharded.json lists its tensors
  gguf_<case>.gguf               LLaMA files of 2 layers, C 8, 2 heads / 1 KV,
                                 F 12, V 10: "good" (untied), "tied" (no
                                 output.weight), and broken ones (see CASES)

The config.json fixtures beside them (config_*.json) are written by hand
from the published model configs; they are not generated here.
"""
import json
import os
import shutil

import numpy as np
import torch
import gguf
from safetensors import safe_open
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures", "formats")


def describe(path):
    """What the reference reads from a safetensors file."""
    out = {"tensors": {}, "metadata": {}}
    with safe_open(path, "pt") as f:
        out["metadata"] = f.metadata() or {}
        for name in f.keys():
            t = f.get_tensor(name)
            sl = f.get_slice(name)
            raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            out["tensors"][name] = {"dtype": sl.get_dtype(), "shape": list(sl.get_shape()),
                                    "hex": raw.hex()}
    return out


def safetensors_fixtures():
    g = torch.Generator().manual_seed(1234)
    mixed = {
        "model.embed_tokens.weight": torch.randn(5, 4, generator=g),
        "model.norm.weight": torch.randn(4, generator=g).to(torch.float16),
        "lm_head.weight": torch.randn(3, 4, generator=g).to(torch.bfloat16),
        "position_ids": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "bytes": torch.arange(7, dtype=torch.uint8),
        "mask": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5, dtype=torch.float64),
        "empty": torch.zeros(0, 3),
    }
    p = os.path.join(FIX, "st_mixed.safetensors")
    save_file(mixed, p, metadata={"format": "pt", "note": "quote \" and\nnewline"})
    with open(p[:-len(".safetensors")] + ".json", "w") as f:
        json.dump(describe(p), f, indent=1, sort_keys=True)

    floats = {
        "a.weight": torch.randn(3, 5, generator=g),
        "b.weight": torch.randn(2, 3, generator=g).to(torch.float16),
        "c.weight": torch.randn(7, generator=g).to(torch.bfloat16),
        "d.bias": torch.randn(1, generator=g),
        "e": torch.randn(2, 1, 2, generator=g).to(torch.bfloat16),
    }
    save_file(floats, os.path.join(FIX, "st_float.safetensors"), metadata={"format": "pt"})

    # Two shards and an index, as transformers' save_pretrained writes them.
    d = os.path.join(FIX, "st_sharded")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    shards = [
        {"model.layers.0.self_attn.q_proj.weight": torch.randn(4, 4, generator=g),
         "model.layers.0.mlp.up_proj.weight": torch.randn(6, 4, generator=g).to(torch.bfloat16)},
        {"model.layers.1.self_attn.q_proj.weight": torch.randn(4, 4, generator=g),
         "model.norm.weight": torch.randn(4, generator=g).to(torch.float16),
         "model.embed_tokens.weight": torch.randn(10, 4, generator=g)},
    ]
    weight_map, total, described = {}, 0, {"tensors": {}}
    for i, sh in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        path = os.path.join(d, name)
        save_file(sh, path, metadata={"format": "pt"})
        for k, v in sh.items():
            weight_map[k] = name
            total += v.numel() * v.element_size()
        for k, v in describe(path)["tensors"].items():
            v["shard"] = name
            described["tensors"][k] = v
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total},
                   "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")
    with open(os.path.join(FIX, "st_sharded.json"), "w") as f:
        json.dump(described, f, indent=1, sort_keys=True)


# ---- GGUF -------------------------------------------------------------------

L, C, H, KV, F, V = 2, 8, 2, 1, 12, 10
D = C // H


def gguf_file(name, *, arch="llama", kv_edit=None, drop=(), reshape=None, extra=(),
              tied=False, n_tokens=V, kv_heads=KV):
    """A tiny LLaMA GGUF.  reshape: {tensor: numpy shape}; extra: more
    (name, shape) tensors; kv_edit(w) may add keys."""
    rng = np.random.default_rng(7)
    w = gguf.GGUFWriter(os.path.join(FIX, f"gguf_{name}.gguf"), arch)
    w.add_block_count(L)
    w.add_context_length(64)
    w.add_embedding_length(C)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(500000.0)
    w.add_rope_dimension_count(D)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(n_tokens)])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    if kv_edit:
        kv_edit(w)
    # PyTorch shapes [out, in]; gguf reverses them into ggml dims.
    shapes = {"token_embd.weight": (V, C), "output_norm.weight": (C,)}
    if not tied:
        shapes["output.weight"] = (V, C)
    for i in range(L):
        shapes.update({
            f"blk.{i}.attn_norm.weight": (C,), f"blk.{i}.attn_q.weight": (H * D, C),
            f"blk.{i}.attn_k.weight": (KV * D, C), f"blk.{i}.attn_v.weight": (KV * D, C),
            f"blk.{i}.attn_output.weight": (C, H * D), f"blk.{i}.ffn_norm.weight": (C,),
            f"blk.{i}.ffn_gate.weight": (F, C), f"blk.{i}.ffn_up.weight": (F, C),
            f"blk.{i}.ffn_down.weight": (C, F)})
    shapes.update(reshape or {})
    shapes.update(dict(extra))
    for t, shape in shapes.items():
        if t in drop:
            continue
        w.add_tensor(t, rng.standard_normal(shape).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


CASES = {
    "good": {},
    "tied": {"tied": True},
    "missing_ffn_up": {"drop": ("blk.1.ffn_up.weight",)},
    "bad_k_shape": {"reshape": {"blk.0.attn_k.weight": (2 * D, C)}},
    "bad_embd": {"reshape": {"token_embd.weight": (V + 1, C)}},
    "vocab_mismatch": {"n_tokens": V + 2},
    "arch_gpt2": {"arch": "gpt2"},
    "yarn": {"kv_edit": lambda w: (w.add_rope_scaling_type(gguf.RopeScalingType.YARN),
                                   w.add_rope_scaling_factor(4.0))},
    "linear": {"kv_edit": lambda w: (w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR),
                                     w.add_rope_scaling_factor(2.0))},
    "bias": {"extra": [("blk.0.attn_q.bias", (H * D,))]},
    "rope_freqs": {"extra": [("rope_freqs.weight", (D // 2,))]},
    "extra_layer": {"extra": [("blk.2.attn_norm.weight", (C,))]},
    "kv_not_dividing": {"kv_heads": 3},
}


def gguf_fixtures():
    for name, kw in CASES.items():
        gguf_file(name, **kw)


def main():
    os.makedirs(FIX, exist_ok=True)
    safetensors_fixtures()
    gguf_fixtures()


if __name__ == "__main__":
    main()
