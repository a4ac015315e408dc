#!/usr/bin/env python3
"""Reference fixtures for src/train/optim.c: ten steps of
torch.nn.utils.clip_grad_norm_ + torch.optim.AdamW + a LambdaLR warmup and
cosine schedule.  Nothing expected here comes from libinternlm.

    /work/ref-venv/bin/python tools/reference/optim_fixtures.py

Writes under tests/fixtures/train/:
  adamw_ref.json  the setup and the scalars: tensors (name, shape, decay) in
                  slab order, the hyperparameters, and per step the learning
                  rate the step used and the total gradient norm (before
                  clipping) that clip_grad_norm_ returned
  adamw_ref.f32   little-endian float32, no header, tensors concatenated in
                  the order of the .json (N elements a set, no gaps):
                  the initial parameters [N]; then per step the raw gradients
                  [N] and the parameters after the step [N]; then the final
                  exp_avg [N] and exp_avg_sq [N]

The schedule is written in libinternlm's convention: optimizer step s
(counted from 1, as AdamW's state["step"]) uses
  lr * s / warmup                                 for s <= warmup,
  min + (lr - min) * (1 + cos(pi * p)) / 2,  p = (s - warmup) / (total - warmup)
LambdaLR calls its lambda with the number of scheduler.step() calls made so
far (0 for the first optimizer step), hence f(e + 1) below.
"""
import json
import math
import os

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures", "train")

LR, MIN_LR, WARMUP, TOTAL = 1e-2, 1e-3, 3, 10
BETAS, EPS, WD, CLIP = (0.9, 0.95), 1e-8, 0.1, 1.0
STEPS = 10
# Odd sizes, so the 16-element alignment of the slab layout leaves gaps.
TENSORS = [("weight", [6, 7], True), ("norm", [7], False), ("embedding", [11, 7], False)]
# Gradient scale per step: the total norm is about 11 * scale, so steps 2
# and 6 are clipped (6 by a factor of about 100) and the others are not.
GRAD_STD = [0.05, 0.15, 0.05, 0.04, 0.06, 10.0, 0.05, 0.03, 0.05, 0.07]


def lr_at(s):
    if s <= WARMUP:
        return LR * s / WARMUP
    if s >= TOTAL:
        return MIN_LR
    p = (s - WARMUP) / (TOTAL - WARMUP)
    return MIN_LR + (LR - MIN_LR) * 0.5 * (1.0 + math.cos(math.pi * p))


def main():
    os.makedirs(FIX, exist_ok=True)
    g = torch.Generator().manual_seed(20260601)
    params = [torch.nn.Parameter(torch.randn(*shape, generator=g) * 0.5) for _, shape, _ in TENSORS]
    decay = [p for p, (_, _, d) in zip(params, TENSORS) if d]
    no_decay = [p for p, (_, _, d) in zip(params, TENSORS) if not d]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=EPS, foreach=False, fused=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_at(e + 1) / LR)

    flat = lambda ts: np.concatenate([t.detach().numpy().reshape(-1) for t in ts]).astype("<f4")
    blobs = [flat(params)]
    lrs, norms = [], []
    for s in range(STEPS):
        grads = [torch.randn(*p.shape, generator=g) * GRAD_STD[s] for p in params]
        for p, gr in zip(params, grads):
            p.grad = gr.clone()
        blobs.append(flat(grads))
        lrs.append(opt.param_groups[0]["lr"])
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, CLIP)))
        opt.step()
        sched.step()
        blobs.append(flat(params))
    blobs.append(flat([opt.state[p]["exp_avg"] for p in params]))
    blobs.append(flat([opt.state[p]["exp_avg_sq"] for p in params]))
    with open(os.path.join(FIX, "adamw_ref.f32"), "wb") as f:
        for b in blobs:
            f.write(b.tobytes())
    meta = {
        "torch": torch.__version__,
        "tensors": [{"name": n, "shape": s, "decay": d} for n, s, d in TENSORS],
        "optimizer": {"lr": LR, "min_lr": MIN_LR, "warmup_steps": WARMUP, "total_steps": TOTAL,
                      "schedule": "cosine", "beta1": BETAS[0], "beta2": BETAS[1], "eps": EPS,
                      "weight_decay": WD, "clip_norm": CLIP},
        "steps": STEPS,
        "lr": lrs,
        "grad_norm": norms,
    }
    with open(os.path.join(FIX, "adamw_ref.json"), "w") as f:
        json.dump(meta, f, separators=(",", ":"))
    print("lr", lrs)
    print("norm", norms)


if __name__ == "__main__":
    main()
