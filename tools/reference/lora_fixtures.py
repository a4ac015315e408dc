#!/usr/bin/env python3
"""Reference fixtures for LoRA training (tests/test_lora.c).

Every expected number comes from `peft` on `transformers.LlamaForCausalLM`
(eager attention); nothing here is libinternlm code.  The base model and the
packed batch are train_fixtures.py's gqa_untied ones
(tests/fixtures/train/grad_gqa_untied/).  For each adapter config below,
peft wraps the model, lora_A and lora_B get random values (B is zero at
PEFT's init, which would leave A's gradient zero and hide errors), and the
loss of the packed batch (every document run alone, sum of CE over targets
divided by their count, as train_fixtures.py) and its gradient with respect
to every adapter tensor are computed in float64 on the fp32 values; dropout
is 0 (torch's masks cannot be reproduced).

Output under tests/fixtures/train/lora_<name>/:
  adapter_config.json, adapter_model.safetensors   peft's save_pretrained (fp32)
  grads.safetensors     d loss / d every adapter tensor, PEFT's file keys
  ref.json              loss, loss_sum, n_targets, scale, versions,
                        logits of row 0's first document (the merged model's
                        forward equals these too)

Run:  /work/venv-ref/bin/python tools/reference/lora_fixtures.py
(a venv with torch, transformers, peft, safetensors, numpy)
"""
import copy, json, os, shutil, sys

import numpy as np
import peft
import safetensors
import torch
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
from train_fixtures import loss_sum, jdump  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASE = os.path.join(ROOT, "tests", "fixtures", "train", "grad_gqa_untied")
OUT = os.path.join(ROOT, "tests", "fixtures", "train")

CONFIGS = {
    "all": dict(r=4, lora_alpha=8, target_modules="all-linear", use_rslora=False, seed=11),
    "qv_rs": dict(r=8, lora_alpha=4, target_modules=["q_proj", "v_proj"], use_rslora=True,
                  seed=12),
}


def file_key(name):
    """peft's in-memory parameter name -> its adapter_model.safetensors key."""
    return name.replace(".default", "")


def build(name, spec):
    d = os.path.join(OUT, "lora_" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    base = LlamaForCausalLM.from_pretrained(BASE, torch_dtype=torch.float32,
                                            attn_implementation="eager")
    with open(os.path.join(BASE, "batch.json")) as f:
        bt = json.load(f)
    cfg = LoraConfig(r=spec["r"], lora_alpha=spec["lora_alpha"],
                     target_modules=spec["target_modules"], lora_dropout=0.0,
                     use_rslora=spec["use_rslora"], bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(spec["seed"])
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    model.peft_config["default"].base_model_name_or_path = "grad_gqa_untied"
    model.save_pretrained(d, safe_serialization=True)
    os.remove(os.path.join(d, "README.md"))  # peft's model card

    m64 = copy.deepcopy(model).double()
    m64.zero_grad()
    s, n = loss_sum(m64, bt)
    (s / n).backward()
    grads = {file_key(k): p.grad.detach().float().contiguous()
             for k, p in m64.named_parameters() if "lora_" in k}
    save_file(grads, os.path.join(d, "grads.safetensors"))

    c = bt["cu_seqlens"][0]
    ids = torch.tensor([bt["tokens"][0][c[0]:c[1]]])
    with torch.no_grad():
        logits = m64(input_ids=ids, use_cache=False).logits[0].detach().float()
    r = spec["r"]
    scale = spec["lora_alpha"] / (r ** 0.5 if spec["use_rslora"] else r)
    jdump(os.path.join(d, "ref.json"), {
        "loss": float((s / n).detach()), "loss_sum": float(s.detach()), "n_targets": n, "scale": scale,
        "doc0_ids": ids[0].tolist(), "doc0_logits": logits.flatten().tolist(),
        "vocab_size": logits.shape[1],
        "n_adapter_tensors": len(grads),
        "versions": {"peft": peft.__version__, "transformers": transformers.__version__,
                     "torch": torch.__version__, "safetensors": safetensors.__version__,
                     "numpy": np.__version__, "python": sys.version.split()[0]}})
    print(name, "loss", float(s / n), "tensors", len(grads))


if __name__ == "__main__":
    for k, v in CONFIGS.items():
        build(k, v)
