#!/usr/bin/env python3
"""LoRA training tokens/s and peak memory against peft on PyTorch eager.

The same run times libinternlm (`internlm bench train --lora-r R --json`)
and peft (LoraConfig r R, alpha 2R, dropout 0.05 on every linear of the
layers: q, k, v, o, gate, up, down; the base frozen) on transformers'
LlamaForCausalLM (fp32, eager CPU, its default attention) of the same
architecture (default: bench train's 27.7M LLaMA), batch of B rows of T
random tokens, thread count and step: forward, backward of the mean token
loss, clip_grad_norm_(1.0) over the adapter, torch.optim.AdamW(lr 3e-4,
betas (0.9, 0.95), eps 1e-8, weight_decay 0.1) over the adapter, zero_grad.
Each side runs in its own process, `warmup` untimed steps then `steps` timed
ones; its peak RSS is that process's ru_maxrss (os.wait4), which includes
the interpreter and torch for peft and the CLI for ours.  The two alternate
for `rounds` rounds and each keeps its best round (tokens/s) and its lowest
peak.  Goal (issue 12): >= 1.5x peft's tokens/s at <= 0.6x its peak memory.

  /work/venv-ref/bin/python tools/bench_lora.py [--model-config F] [--r 16]
        [--batch 8] [--seqlen 256] [--steps 5] [--warmup 2] [--threads 2]
        [--rounds 3] [--json]
"""
import argparse, json, os, subprocess, sys, tempfile, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CLI = os.path.join(ROOT, "build", "internlm")


def run_child(cmd):
    """Runs cmd; returns (its stdout parsed as JSON, its peak RSS in MiB)."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise SystemExit("%s failed (%d)" % (cmd[0], p.returncode))
        out.seek(0)
        return json.loads(out.read().decode().strip().splitlines()[-1]), ru.ru_maxrss / 1024.0


def ours(a):
    cmd = [CLI, "bench", "train", "--lora-r", str(a.r), "--batch", str(a.batch), "--seqlen",
           str(a.seqlen), "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads",
           str(a.threads), "--json"]
    if a.model_config:
        cmd += ["--model-config", a.model_config]
    return run_child(cmd)


def peft_child(a):
    """The peft side, in its own process (--child); prints one JSON line."""
    import torch
    import transformers
    import peft
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    config = json.loads(a.child)
    cfg = LlamaConfig(**{k: v for k, v in config.items() if k != "architectures"})
    base = LlamaForCausalLM(cfg).float()
    lc = peft.LoraConfig(r=a.r, lora_alpha=2 * a.r, lora_dropout=0.05, bias="none",
                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                         "up_proj", "down_proj"], task_type="CAUSAL_LM")
    model = peft.get_peft_model(base, lc).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    g = torch.Generator().manual_seed(42)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seqlen), generator=g)
    times, losses = [], []
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if i >= a.warmup:
            times.append(time.perf_counter() - t)
    print(json.dumps({"tokens_per_s": a.batch * a.seqlen * len(times) / sum(times),
                      "best_tokens_per_s": a.batch * a.seqlen / min(times),
                      "step_seconds": sum(times) / len(times), "first_loss": losses[0],
                      "last_loss": losses[-1], "trainable": sum(p.numel() for p in params),
                      "torch": torch.__version__, "transformers": transformers.__version__,
                      "peft": peft.__version__,
                      "attention": model.base_model.model.config._attn_implementation}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-config")
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return peft_child(a)
    rounds = []
    for _ in range(a.rounds):
        mine, mine_rss = ours(a)
        child = [sys.executable, os.path.abspath(__file__), "--child",
                 json.dumps(mine["model_config"])] + [
            x for k in ("r", "batch", "seqlen", "steps", "warmup", "threads")
            for x in ("--" + k, str(getattr(a, k)))]
        theirs, theirs_rss = run_child(child)
        rounds.append({"ours": mine, "ours_rss_mib": mine_rss, "peft": theirs,
                       "peft_rss_mib": theirs_rss})
    best = lambda side: max((r[side] for r in rounds), key=lambda x: x["tokens_per_s"])
    mine, theirs = best("ours"), best("peft")
    mine_rss = min(r["ours_rss_mib"] for r in rounds)
    theirs_rss = min(r["peft_rss_mib"] for r in rounds)
    res = {"threads": a.threads, "r": a.r, "batch": a.batch, "seqlen": a.seqlen,
           "steps": a.steps, "warmup": a.warmup,
           "trainable": mine["parameters"], "peft_trainable": theirs["trainable"],
           "ours": mine, "peft": theirs, "ratio": mine["tokens_per_s"] / theirs["tokens_per_s"],
           "ours_peak_rss_mib": mine_rss, "peft_peak_rss_mib": theirs_rss,
           "memory_ratio": mine_rss / theirs_rss,
           "rounds": [{"ours": r["ours"]["tokens_per_s"], "peft": r["peft"]["tokens_per_s"],
                       "ours_rss_mib": r["ours_rss_mib"], "peft_rss_mib": r["peft_rss_mib"]}
                      for r in rounds]}
    if a.json:
        print(json.dumps(res))
        return
    c = mine["model_config"]
    print("LoRA r %d (alpha %d, dropout 0.05, every linear) on a LLaMA (V %d, C %d, L %d, H %d, "
          "KV %d, F %d), batch %d x %d, %d threads, %d timed steps after %d" %
          (a.r, 2 * a.r, c["vocab_size"], c["hidden_size"], c["num_hidden_layers"],
           c["num_attention_heads"], c["num_key_value_heads"], c["intermediate_size"], a.batch,
           a.seqlen, a.threads, a.steps, a.warmup))
    print("trainable parameters: ours %d, peft %d" % (mine["parameters"], theirs["trainable"]))
    print("rounds (tokens/s ours / peft; peak MiB ours / peft): " + ", ".join(
        "%.0f / %.0f; %.0f / %.0f" % (r["ours"], r["peft"], r["ours_rss_mib"], r["peft_rss_mib"])
        for r in res["rounds"]))
    print("%-6s %12s %10s %12s %14s" % ("", "tokens/s", "s/step", "last loss", "peak RSS MiB"))
    print("%-6s %12.1f %10.3f %12.4f %14.0f" % ("ours", mine["tokens_per_s"],
                                               mine["step_seconds"], mine["last_loss"], mine_rss))
    print("%-6s %12.1f %10.3f %12.4f %14.0f" % ("peft", theirs["tokens_per_s"],
                                               theirs["step_seconds"], theirs["last_loss"],
                                               theirs_rss))
    print("ratio  %.2fx tokens/s, %.2fx peak memory (goal >= 1.5x, <= 0.6x)" %
          (res["ratio"], res["memory_ratio"]))
    print("ours by op (ms per step): " + ", ".join(
        "%s %.0f" % (k, 1e3 * v) for k, v in mine["op_seconds_per_step"].items()))


if __name__ == "__main__":
    sys.exit(main())
