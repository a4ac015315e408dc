#!/usr/bin/env python3
"""Reference fixtures for the model loader / forward-pass tests.

Every expected value comes from `transformers.LlamaForCausalLM` (fp32, eager
attention) with random weights; nothing here is libinternlm code.  The only
forward pass written here is a small InternLM2 cross-check (the documented
fused-wqkv split) that proves the InternLM2 rearrangement, asserted against
the transformers logits.

Output, one directory per config under tests/fixtures/model/<name>/:
  config.json          as save_pretrained writes it (transformers 5: the rope
                       settings live in "rope_parameters", rope_theta inside)
  config_v4.json       the same model in the older key style that real hub
                       files use (top-level "rope_theta" and "rope_scaling");
                       asserted here to load to the same logits
  model.safetensors    fp32 weights, save_pretrained(safe_serialization=True)
  logits_<k>.f32       sequence k's logits, little-endian float32, row-major
                       [T_k, vocab] (no header)
  expected.json        sequences, shapes, per-token log-probs, rope details,
                       versions
and <name>_internlm2/ for gqa_untied: the same weights in InternLM2's layout
(config.json + model.safetensors, written with `safetensors`); its expected
values are the LLaMA model's (expected.json there points at them too).

Run:  /work/ref-venv/bin/python tools/reference/model_fixtures.py
"""
import copy, json, math, os, shutil, sys, tempfile

import numpy as np
import torch
import transformers
import safetensors
from safetensors.torch import save_file, load_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "model")
LENGTHS = [1, 7, 19, 27]

# Sizes: hidden and head layout as the issue asks; intermediate and vocab are
# smaller than first proposed, and the two RoPE-variant models have one layer
# (the layer stack is covered by the others), so the tree stays under 1.5 MB fp32.
CONFIGS = {
    "gqa_tied": dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                     num_hidden_layers=2, intermediate_size=32, vocab_size=128,
                     rope_theta=1e4, rope_scaling=None, tie_word_embeddings=True,
                     max_position_embeddings=128),
    "mha_untied": dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=4,
                       num_hidden_layers=2, intermediate_size=32, vocab_size=64,
                       rope_theta=1e6, rope_scaling=None, tie_word_embeddings=False,
                       max_position_embeddings=128),
    "odd_linear": dict(hidden_size=72, num_attention_heads=6, num_key_value_heads=3,
                       num_hidden_layers=2, intermediate_size=37, vocab_size=101,
                       rope_theta=5e5, rope_scaling={"type": "linear", "factor": 2.0},
                       tie_word_embeddings=False, max_position_embeddings=128),
    # original_max_position_embeddings 64 (not 32): with head_dim 16 and theta 5e5 the
    # wavelengths are 6.3, 32.5, 168, ... so 64 puts one in each of llama3's three
    # bands (high < 16 <= medium <= 64 < low); with 32 the medium band is empty.
    "llama3_rope": dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=1,
                        num_hidden_layers=1, intermediate_size=32, vocab_size=128,
                        rope_theta=5e5,
                        rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 64},
                        tie_word_embeddings=True, max_position_embeddings=128),
    "dynamic_ntk": dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                        num_hidden_layers=1, intermediate_size=32, vocab_size=128,
                        rope_theta=1e4, rope_scaling={"type": "dynamic", "factor": 2.0},
                        tie_word_embeddings=True, max_position_embeddings=16),
    "gqa_untied": dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                       num_hidden_layers=2, intermediate_size=32, vocab_size=64,
                       rope_theta=1e4, rope_scaling=None, tie_word_embeddings=False,
                       max_position_embeddings=128),
}
COMMON = dict(rms_norm_eps=1e-5, hidden_act="silu", attention_bias=False, mlp_bias=False,
              bos_token_id=1, eos_token_id=2, pad_token_id=None, torch_dtype="float32")


def jdump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def make_config(spec):
    kw = dict(COMMON)
    kw.update(copy.deepcopy(spec))      # LlamaConfig edits rope_scaling in place
    c = LlamaConfig(**kw)
    c._attn_implementation = "eager"
    return c


def init_weights(model, seed):
    """Random weights at a scale that gives O(1) activations and O(1..10) logits
    (transformers' own init, N(0, 0.02), makes every logit ~0 and hides errors)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))          # U(0.5, 1.5)
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.35)
            else:                                                       # Linear [out, in]
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))


def load(d, cfg_file="config.json"):
    if cfg_file == "config.json":
        m = LlamaForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    else:
        tmp = tempfile.mkdtemp()
        shutil.copy(os.path.join(d, cfg_file), os.path.join(tmp, "config.json"))
        os.symlink(os.path.join(d, "model.safetensors"), os.path.join(tmp, "model.safetensors"))
        m = LlamaForCausalLM.from_pretrained(tmp, attn_implementation="eager", dtype=torch.float32)
        shutil.rmtree(tmp)
    m.eval()
    return m


def run(d, ids, cfg_file="config.json"):
    """Logits of one sequence from a freshly loaded model: dynamic NTK keeps state
    between calls (its cached length only grows), so every sequence starts clean."""
    m = load(d, cfg_file)
    with torch.no_grad():
        out = m(input_ids=torch.tensor([ids]), use_cache=False)
    rot = m.model.rotary_emb
    return out.logits[0].float(), rot.inv_freq.detach().clone(), float(getattr(rot, "attention_scaling", 1.0))


def v4_config(d):
    """config.json in the pre-5 key style: rope_theta + rope_scaling at top level."""
    c = json.load(open(os.path.join(d, "config.json")))
    rp = dict(c.pop("rope_parameters"))
    c["rope_theta"] = rp.pop("rope_theta")
    rt = rp.pop("rope_type")
    rp.pop("type", None)
    c["rope_scaling"] = None if rt == "default" else dict(rp, type=rt, rope_type=rt)
    return c


# ------------------------------------------------------------ InternLM2 layout
def to_internlm2(sd, cfg):
    nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    hd, g = cfg.hidden_size // nh, nh // nkv
    out = {"model.tok_embeddings.weight": sd["model.embed_tokens.weight"],
           "model.norm.weight": sd["model.norm.weight"],
           "output.weight": sd["lm_head.weight"]}
    for i in range(cfg.num_hidden_layers):
        p = "model.layers.%d." % i
        q = sd[p + "self_attn.q_proj.weight"].view(nkv, g, hd, -1)
        k = sd[p + "self_attn.k_proj.weight"].view(nkv, 1, hd, -1)
        v = sd[p + "self_attn.v_proj.weight"].view(nkv, 1, hd, -1)
        out[p + "attention.wqkv.weight"] = torch.cat([q, k, v], dim=1).reshape(-1, cfg.hidden_size)
        out[p + "attention.wo.weight"] = sd[p + "self_attn.o_proj.weight"]
        out[p + "feed_forward.w1.weight"] = sd[p + "mlp.gate_proj.weight"]
        out[p + "feed_forward.w3.weight"] = sd[p + "mlp.up_proj.weight"]
        out[p + "feed_forward.w2.weight"] = sd[p + "mlp.down_proj.weight"]
        out[p + "attention_norm.weight"] = sd[p + "input_layernorm.weight"]
        out[p + "ffn_norm.weight"] = sd[p + "post_attention_layernorm.weight"]
    return {k: v.contiguous().clone() for k, v in out.items()}


def internlm2_config(cfg):
    return {"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2",
            "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size,
            "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads, "hidden_act": "silu",
            "max_position_embeddings": cfg.max_position_embeddings,
            "rms_norm_eps": cfg.rms_norm_eps, "rope_theta": cfg.rope_parameters["rope_theta"],
            "rope_scaling": None, "bias": False, "tie_word_embeddings": False,
            "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2,
            "initializer_range": 0.02, "use_cache": True, "torch_dtype": "float32",
            "attn_implementation": "eager"}


def internlm2_forward(w, c, ids):
    """Cross-check only: InternLM2's forward as its modeling code documents it
    (wqkv output viewed as [T, nkv, g+2, hd]: q = [:g], k = [-2], v = [-1];
    rotate_half RoPE; RMSNorm; SwiGLU w2(silu(w1 x) * w3 x))."""
    H, nh, nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd, g, eps, T = H // nh, nh // nkv, c["rms_norm_eps"], len(ids)

    def rms(x, wt):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * wt

    inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None]
    cos, sin = torch.cat([ang.cos()] * 2, -1).float(), torch.cat([ang.sin()] * 2, -1).float()

    def rope(x):                                   # x [heads, T, hd]
        x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    x = w["model.tok_embeddings.weight"][torch.tensor(ids)]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        h = rms(x, w[p + "attention_norm.weight"])
        qkv = (h @ w[p + "attention.wqkv.weight"].T).view(T, nkv, g + 2, hd)
        q = qkv[:, :, :g, :].reshape(T, nh, hd).transpose(0, 1)
        k = qkv[:, :, -2, :].transpose(0, 1).repeat_interleave(g, 0)
        v = qkv[:, :, -1, :].transpose(0, 1).repeat_interleave(g, 0)
        q, k = rope(q), rope(k)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, -1) @ v
        x = x + a.transpose(0, 1).reshape(T, H) @ w[p + "attention.wo.weight"].T
        h = rms(x, w[p + "ffn_norm.weight"])
        f = torch.nn.functional.silu(h @ w[p + "feed_forward.w1.weight"].T) * (h @ w[p + "feed_forward.w3.weight"].T)
        x = x + f @ w[p + "feed_forward.w2.weight"].T
    return rms(x, w["model.norm.weight"]) @ w["output.weight"].T


# ------------------------------------------------------------------- main
def rope_info(cfg, T, inv_freq, attn_scaling):
    rp = dict(cfg.rope_parameters)
    info = {"rope_type": rp.get("rope_type"), "inv_freq": [float(x) for x in inv_freq],
            "attention_scaling": attn_scaling}
    if rp.get("rope_type") == "dynamic":
        theta, f, L = rp["rope_theta"], rp["factor"], cfg.max_position_embeddings
        hd = cfg.hidden_size // cfg.num_attention_heads
        base = theta * ((f * T / L) - (f - 1)) ** (hd / (hd - 2)) if T > L else theta
        want = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        assert torch.equal(want, inv_freq), ("dynamic base", T, want, inv_freq)
        info["dynamic_base"] = base
        info["dynamic_active"] = T > L
    return info


def build(name, spec, seed):
    d = os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    cfg = make_config(spec)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).float().eval()
    init_weights(model, seed)
    model.save_pretrained(d, safe_serialization=True)
    jdump(os.path.join(d, "config_v4.json"), v4_config(d))
    # the saved tensors are the ones we run on
    sd = load_file(os.path.join(d, "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in sd.values())
    assert ("lm_head.weight" in sd) == (not cfg.tie_word_embeddings), sorted(sd)

    gen = torch.Generator().manual_seed(seed + 1000)
    seqs, files = [], []
    for k, T in enumerate(LENGTHS):
        ids = torch.randint(0, cfg.vocab_size, (T,), generator=gen).tolist()
        logits, inv_freq, att = run(d, ids)
        logits_v4, inv_v4, _ = run(d, ids, "config_v4.json")
        assert torch.equal(logits, logits_v4), (name, "config_v4.json loads differently")
        # one position at a time through the KV cache must agree with the full pass
        # (except dynamic NTK, whose base depends on the length seen so far)
        if cfg.rope_parameters.get("rope_type") != "dynamic" and T > 1:
            m = load(d)
            with torch.no_grad():
                o1 = m(input_ids=torch.tensor([ids[:T - 1]]), use_cache=True)
                o2 = m(input_ids=torch.tensor([ids[T - 1:]]), past_key_values=o1.past_key_values,
                       use_cache=True)
            assert torch.allclose(o2.logits[0, -1], logits[-1], atol=1e-4, rtol=0)
        lp = torch.log_softmax(logits.double(), -1)
        logprobs = [float(lp[i - 1, ids[i]]) for i in range(1, T)]
        fn = "logits_%d.f32" % k
        arr = logits.numpy().astype("<f4")
        arr.tofile(os.path.join(d, fn))
        files.append(fn)
        seqs.append({"ids": ids, "length": T, "logits_file": fn, "logits_shape": [T, cfg.vocab_size],
                     "logprobs": logprobs, "sum_logprob": float(sum(logprobs)),
                     "argmax": [int(x) for x in logits.argmax(-1)],
                     "logits_absmax": float(logits.abs().max()),
                     "rope": rope_info(cfg, T, inv_freq, att)})
    exp = {"name": name, "seed": seed, "dtype": "float32", "attn_implementation": "eager",
           "architecture": "LlamaForCausalLM",
           "config": spec,
           "rms_norm_eps": cfg.rms_norm_eps,
           "logits_format": "little-endian float32, row-major [T, vocab], no header",
           "logprobs": "logprobs[i-1] = log p(ids[i] | ids[<i]) = log_softmax(logits[i-1])[ids[i]], float64",
           "tolerance_hint": {"logits_abs": 1e-4},
           "init": "torch.manual_seed(seed); norm weights U(0.5,1.5), embeddings N(0,0.35^2), "
                   "Linear [out,in] N(0,1/in) from torch.Generator(seed)",
           "versions": versions(), "sequences": seqs}
    jdump(os.path.join(d, "expected.json"), exp)
    return d, cfg, seqs


def versions():
    return {"transformers": transformers.__version__, "torch": torch.__version__,
            "safetensors": safetensors.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}


def build_internlm2(src, cfg, seqs):
    name = os.path.basename(src) + "_internlm2"
    d = os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    sd = load_file(os.path.join(src, "model.safetensors"))
    w = to_internlm2(sd, cfg)
    save_file(w, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    c = internlm2_config(cfg)
    jdump(os.path.join(d, "config.json"), c)
    # cross-check: InternLM2's documented split on the fused tensors reproduces
    # transformers' LLaMA logits
    w2 = load_file(os.path.join(d, "model.safetensors"))
    worst = 0.0
    for s in seqs:
        ref = torch.from_numpy(np.fromfile(os.path.join(src, s["logits_file"]), dtype="<f4")).view(s["logits_shape"])
        got = internlm2_forward(w2, c, s["ids"])
        err = float((got - ref).abs().max())
        worst = max(worst, err)
        assert err < 1e-4, (name, s["length"], err)
    # and the wqkv row formula of FACTS.md picks the same rows
    nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    hd, g = cfg.hidden_size // nh, nh // nkv
    for i in range(cfg.num_hidden_layers):
        p = "model.layers.%d." % i
        wq = w2[p + "attention.wqkv.weight"]
        assert wq.shape == ((nh + 2 * nkv) * hd, cfg.hidden_size)
        for j in range(nh):
            r = ((j // g) * (g + 2) + j % g) * hd
            assert torch.equal(wq[r:r + hd], sd[p + "self_attn.q_proj.weight"][j * hd:(j + 1) * hd])
        for k in range(nkv):
            rk, rv = (k * (g + 2) + g) * hd, (k * (g + 2) + g + 1) * hd
            assert torch.equal(wq[rk:rk + hd], sd[p + "self_attn.k_proj.weight"][k * hd:(k + 1) * hd])
            assert torch.equal(wq[rv:rv + hd], sd[p + "self_attn.v_proj.weight"][k * hd:(k + 1) * hd])
    jdump(os.path.join(d, "expected.json"), {
        "name": name, "architecture": "InternLM2ForCausalLM", "same_weights_as": os.path.basename(src),
        "expected": "../%s/expected.json (same sequences; logits files in ../%s/)" % (
            os.path.basename(src), os.path.basename(src)),
        "tensors": {k: list(v.shape) for k, v in sorted(w.items())},
        "wqkv_layout": "per KV head k: rows [q_(k*g) .. q_(k*g+g-1), k_k, v_k], each head_dim rows; "
                       "g = num_attention_heads / num_key_value_heads",
        "cross_check": {"method": "torch forward using InternLM2's documented wqkv split "
                                  "(view [T, nkv, g+2, hd]) vs transformers LLaMA logits",
                        "max_abs_diff": worst},
        "versions": versions()})
    print("%-22s cross-check max |diff| %.3g" % (name, worst))


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, spec) in enumerate(CONFIGS.items()):
        d, cfg, seqs = build(name, spec, seed=1234 + i)
        print("%-22s ok, logits absmax %s" % (name, [round(s["logits_absmax"], 2) for s in seqs]))
        if name == "gqa_untied":
            build_internlm2(d, cfg, seqs)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print("total size of tests/fixtures/model: %d bytes" % total)
    assert total < 1_500_000, total


if __name__ == "__main__":
    main()
