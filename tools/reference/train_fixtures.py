#!/usr/bin/env python3
"""Reference fixtures for the training graph (tests/test_grad.c).

Every expected number comes from `transformers.LlamaForCausalLM` (eager
attention) with random weights; nothing here is libinternlm code.  A packed
batch (B rows of T tokens, each row 2-3 documents whose positions restart at
0) is scored the way the library's graph must score it: attention is causal
and stays inside a document.  transformers has no packed attention, so the
reference runs every document as its own sequence and sums the per-document
cross-entropy; the loss is that sum divided by the number of targets (labels
that are not -100).  Loss and gradients are computed in float64 on the fp32
weights (the exact answer for the stored weights); the float32 run's
distance from it is recorded as evidence for the test tolerance.

Output under tests/fixtures/train/:
  grad_<name>/config.json, model.safetensors   the model (save_pretrained, fp32)
  grad_<name>/grads.safetensors                d loss / d every parameter
                                               (HF names, fp32 of the fp64 result)
  grad_<name>/batch.json                       B, T, tokens, labels, positions,
                                               cu_seqlens [B][n+1], n_seqs, loss,
                                               loss_sum, n_targets, tolerances
  grad_<name>_internlm2/                       gqa_untied in InternLM2's fused,
                                               grouped wqkv layout (config.json +
                                               model.safetensors); its expected
                                               loss and gradients are gqa_untied's
                                               (wqkv gradient mapped back to q/k/v)
and in grad_gqa_untied/batch.json "adamw": 10 optimizer steps' losses with
torch.optim.AdamW on the same batch every step (schedule written down there).

Run:  /work/ref-venv/bin/python tools/reference/train_fixtures.py
"""
import copy, json, math, os, shutil, sys

import numpy as np
import torch
import transformers
import safetensors
from safetensors.torch import save_file, load_file
from transformers import LlamaConfig, LlamaForCausalLM

# The InternLM2 layout of a LLaMA state dict (fused, grouped wqkv) and its
# config.json, as the model fixtures write them.
from model_fixtures import internlm2_config, to_internlm2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "train")
IGNORE = -100

CONFIGS = {
    "gqa_untied": dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                       num_hidden_layers=2, intermediate_size=32, vocab_size=96,
                       rope_theta=1e4, tie_word_embeddings=False),
    "mha_tied": dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=4,
                     num_hidden_layers=2, intermediate_size=32, vocab_size=96,
                     rope_theta=5e5, tie_word_embeddings=True),
}
COMMON = dict(rms_norm_eps=1e-5, hidden_act="silu", attention_bias=False, mlp_bias=False,
              bos_token_id=1, eos_token_id=2, pad_token_id=None, max_position_embeddings=64,
              rope_scaling=None, torch_dtype="float32")
B, T = 2, 24
DOCS = [[9, 8, 7], [13, 11]]          # document lengths per row (sum to T)


def jdump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def versions():
    return {"transformers": transformers.__version__, "torch": torch.__version__,
            "safetensors": safetensors.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}


def make_model(spec, seed):
    kw = dict(COMMON)
    kw.update(copy.deepcopy(spec))
    cfg = LlamaConfig(**kw)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    m = LlamaForCausalLM(cfg).float()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():   # O(1) activations (N(0, 0.02) hides errors), as model_fixtures.py
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.35)
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
    return m, cfg


def make_batch(V, seed):
    g = torch.Generator().manual_seed(seed)
    tokens, labels, positions, cu, nseq = [], [], [], [], []
    for row in DOCS:
        assert sum(row) == T
        tk = torch.randint(0, V, (T,), generator=g).tolist()
        lb, ps, c = [], [], [0]
        for n in row:
            s = c[-1]
            for k in range(n):
                ps.append(k)
                lb.append(tk[s + k + 1] if k + 1 < n else IGNORE)
            c.append(s + n)
        # a few masked targets inside documents (SFT-style loss masks)
        for t in torch.randperm(T, generator=g)[:3].tolist():
            lb[t] = IGNORE
        tokens.append(tk); labels.append(lb); positions.append(ps)
        cu.append(c); nseq.append(len(row))
    return dict(B=B, T=T, tokens=tokens, labels=labels, positions=positions,
                cu_seqlens=cu, n_seqs=nseq)


def loss_sum(model, bt):
    """Sum of CE over targets, every document run alone (positions 0..n-1)."""
    total, count = 0.0, 0
    for b in range(bt["B"]):
        c = bt["cu_seqlens"][b]
        for i in range(bt["n_seqs"][b]):
            s, e = c[i], c[i + 1]
            ids = torch.tensor([bt["tokens"][b][s:e]])
            lab = torch.tensor(bt["labels"][b][s:e])
            assert bt["positions"][b][s:e] == list(range(e - s))
            logits = model(input_ids=ids, use_cache=False).logits[0]
            total = total + torch.nn.functional.cross_entropy(
                logits, lab, ignore_index=IGNORE, reduction="sum")
            count += int((lab != IGNORE).sum())
    return total, count


def grads_of(model, bt, dtype):
    m = copy.deepcopy(model).to(dtype)
    m.zero_grad()
    s, n = loss_sum(m, bt)
    loss = s / n
    loss.backward()
    return float(loss.detach()), float(s.detach()), n, {k: p.grad.detach().clone() for k, p in m.named_parameters()}


def rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


# ---------------------------------------------------------- AdamW reference
WARMUP, STEPS, LR, MIN_LR = 3, 10, 1e-2, 1e-3


def lr_lambda(s):
    if s < WARMUP:
        return (s + 1) / WARMUP
    p = (s - WARMUP) / (STEPS - WARMUP)
    return MIN_LR / LR + (1 - MIN_LR / LR) * 0.5 * (1 + math.cos(math.pi * p))


def adamw_run(model, bt):
    m = copy.deepcopy(model).float()
    decay = [p for n, p in m.named_parameters() if p.dim() == 2 and "embed_tokens" not in n]
    no_decay = [p for n, p in m.named_parameters() if not (p.dim() == 2 and "embed_tokens" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.95), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    losses, norms, lrs = [], [], []
    for step in range(STEPS):
        opt.zero_grad()
        s, n = loss_sum(m, bt)
        loss = s / n
        loss.backward()
        lrs.append(opt.param_groups[0]["lr"])
        norms.append(float(torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)))
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        s, n = loss_sum(m, bt)
    return {"losses": losses, "loss_after": float(s / n), "grad_norms_before_clip": norms,
            "lrs": lrs,
            "schedule": {
                "optimizer": "torch.optim.AdamW(lr=1e-2, betas=(0.9, 0.95), eps=1e-8), fp32",
                "param_groups": "weight_decay 0.1 on every 2-D weight except the embedding "
                                "(lm_head included when untied); 0 on norms and the embedding",
                "lr": "LambdaLR: lr = 1e-2 * f(s), s = 0..9 the step index (scheduler.step() "
                      "after optimizer.step()); f(s) = (s+1)/3 for s < 3, else "
                      "0.1 + 0.9 * 0.5 * (1 + cos(pi * (s-3)/7))",
                "clip": "torch.nn.utils.clip_grad_norm_(all parameters, 1.0) before each step; "
                        "grad_norms_before_clip are its return values",
                "step": "zero_grad; loss = sum CE / n_targets on the same batch; backward; clip; "
                        "optimizer.step(); scheduler.step(); losses[i] is the loss before update i",
                "loss_after": "loss after the 10th update"}}


def build(name, spec, seed):
    d = os.path.join(OUT, "grad_" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model, cfg = make_model(spec, seed)
    model.save_pretrained(d, safe_serialization=True)
    os.remove(os.path.join(d, "generation_config.json"))   # not read by anything
    sd = load_file(os.path.join(d, "model.safetensors"))
    assert ("lm_head.weight" in sd) == (not cfg.tie_word_embeddings), sorted(sd)
    model = LlamaForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    bt = make_batch(cfg.vocab_size, seed + 1)
    loss64, sum64, n, g64 = grads_of(model, bt, torch.float64)
    loss32, _, _, g32 = grads_of(model, bt, torch.float32)
    names = [k for k in sd]                    # tied: no lm_head in the file, none here
    grads = {k: g64[k].float().contiguous() for k in names}
    save_file(grads, os.path.join(d, "grads.safetensors"), metadata={"format": "pt"})
    fp32_err = {k: rel(g32[k], g64[k]) for k in names}
    out = dict(bt)
    out.update({"name": name, "seed": seed, "loss": loss64, "loss_sum": sum64, "n_targets": n,
                "loss_float32": loss32,
                "reference": "transformers LlamaForCausalLM, eager attention, every document "
                             "run alone; loss = sum of token CE over labels != -100 divided by "
                             "n_targets; loss and grads in float64 from the fp32 weights",
                "labels": bt["labels"],
                "torch_float32_vs_float64_rel_err": {"max": max(fp32_err.values()),
                                                     "per_tensor": fp32_err},
                "versions": versions()})
    print("%-12s loss %.6f (%d targets); torch fp32 grads vs fp64: max rel err %.2e"
          % (name, loss64, n, max(fp32_err.values())))
    return d, cfg, model, bt, out


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, spec) in enumerate(CONFIGS.items()):
        d, cfg, model, bt, out = build(name, spec, 4321 + 10 * i)
        if name == "gqa_untied":
            out["adamw"] = adamw_run(model, bt)
            print("  adamw losses", ["%.4f" % x for x in out["adamw"]["losses"]])
            d2 = d + "_internlm2"
            shutil.rmtree(d2, ignore_errors=True)
            os.makedirs(d2)
            sd = load_file(os.path.join(d, "model.safetensors"))
            save_file(to_internlm2(sd, cfg), os.path.join(d2, "model.safetensors"),
                      metadata={"format": "pt"})
            jdump(os.path.join(d2, "config.json"), internlm2_config(cfg))
            # the mapping the test inverts: wqkv rows per KV head k are
            # [q_(k*g) .. q_(k*g+g-1), k_k, v_k], head_dim rows each
            out["internlm2"] = {"dir": "grad_gqa_untied_internlm2",
                                "wqkv_layout": "per KV head k: rows [q heads k*g .. k*g+g-1, "
                                               "k head k, v head k], head_dim rows each; "
                                               "g = heads / kv_heads"}
        jdump(os.path.join(d, "batch.json"), out)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print("total size of tests/fixtures/train: %d bytes" % total)
    assert total < 400_000, total


if __name__ == "__main__":
    main()
