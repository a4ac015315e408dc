#!/usr/bin/env python3
"""Training tokens/s against PyTorch eager, in one run.

Times libinternlm (`internlm bench train --json`) and PyTorch eager
(transformers LlamaForCausalLM, fp32, the default "sdpa" attention) on the
same architecture, batch (B rows of T random tokens, one document per row),
thread count and step: forward, backward of the mean token loss,
clip_grad_norm_(1.0), torch.optim.AdamW(lr 3e-4, betas (0.9, 0.95), eps 1e-8,
weight_decay 0.1, torch's default implementation: foreach on CPU), zero_grad.
Both run `warmup` untimed steps, then `steps` timed ones; tokens/s is B*T
times the timed steps over their time.  The two alternate for `rounds`
rounds (PyTorch in this process, its model built once), and each side keeps
its best round: on a shared machine the best round is the one least
disturbed by other jobs.  Prints both and the ratio (ours / PyTorch) of the
best rounds, and of the fastest single steps.

  /work/ref-venv/bin/python tools/bench_train.py [--model-config F]
        [--batch 8] [--seqlen 256] [--steps 5] [--warmup 2] [--threads 2]
        [--rounds 3] [--json]
"""
import argparse, json, os, subprocess, sys, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CLI = os.path.join(ROOT, "build", "internlm")


def ours(a):
    cmd = [CLI, "bench", "train", "--batch", str(a.batch), "--seqlen", str(a.seqlen),
           "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(a.threads),
           "--json"]
    if a.model_config:
        cmd += ["--model-config", a.model_config]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


class PyTorch:
    def __init__(self, a, config):
        import torch
        import transformers
        from transformers import LlamaConfig, LlamaForCausalLM
        torch.set_num_threads(a.threads)
        torch.manual_seed(0)
        self.torch, self.a = torch, a
        cfg = LlamaConfig(**{k: v for k, v in config.items() if k != "architectures"})
        self.model = LlamaForCausalLM(cfg).float().train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=3e-4, betas=(0.9, 0.95),
                                     eps=1e-8, weight_decay=0.1)
        g = torch.Generator().manual_seed(42)
        self.ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seqlen), generator=g)
        self.versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                         "attention": self.model.config._attn_implementation}

    def run(self):
        a, torch = self.a, self.torch
        times, losses = [], []
        for i in range(a.warmup + a.steps):
            t = time.perf_counter()
            loss = self.model(input_ids=self.ids, labels=self.ids).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if i >= a.warmup:
                times.append(time.perf_counter() - t)
        return dict(self.versions, tokens_per_s=a.batch * a.seqlen * len(times) / sum(times),
                    best_tokens_per_s=a.batch * a.seqlen / min(times),
                    step_seconds=sum(times) / len(times), first_loss=losses[0],
                    last_loss=losses[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-config")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    rounds = []
    for _ in range(a.rounds):
        mine = ours(a)
        # A fresh model each round, as ours is (a new process): the losses
        # of both sides then follow the same number of steps.
        rounds.append({"ours": mine, "pytorch": PyTorch(a, mine["model_config"]).run()})
    best = lambda side: max((r[side] for r in rounds), key=lambda x: x["tokens_per_s"])
    mine, theirs = best("ours"), best("pytorch")
    res = {"threads": a.threads, "batch": a.batch, "seqlen": a.seqlen, "steps": a.steps,
           "warmup": a.warmup, "parameters": mine["parameters"], "ours": mine,
           "pytorch": theirs, "ratio": mine["tokens_per_s"] / theirs["tokens_per_s"],
           "best_step_ratio": max(r["ours"]["best_tokens_per_s"] for r in rounds) /
           max(r["pytorch"]["best_tokens_per_s"] for r in rounds),
           "rounds": [{"ours": r["ours"]["tokens_per_s"], "pytorch": r["pytorch"]["tokens_per_s"]}
                      for r in rounds]}
    peer = theirs
    if a.json:
        print(json.dumps(res))
        return
    c = mine["model_config"]
    print("%.1fM-parameter LLaMA (V %d, C %d, L %d, H %d, KV %d, F %d), batch %d x %d, "
          "%d threads, %d timed steps after %d" %
          (mine["parameters"] / 1e6, c["vocab_size"], c["hidden_size"], c["num_hidden_layers"],
           c["num_attention_heads"], c["num_key_value_heads"], c["intermediate_size"], a.batch,
           a.seqlen, a.threads, a.steps, a.warmup))
    print("rounds (tokens/s, ours / pytorch): " + ", ".join(
        "%.0f / %.0f" % (r["ours"], r["pytorch"]) for r in res["rounds"]) + "; best kept")
    print("%-10s %12s %12s %12s" % ("", "tokens/s", "s/step", "last loss"))
    print("%-10s %12.1f %12.3f %12.4f" % ("ours", mine["tokens_per_s"], mine["step_seconds"],
                                          mine["last_loss"]))
    print("%-10s %12.1f %12.3f %12.4f" % ("pytorch", peer["tokens_per_s"], peer["step_seconds"],
                                          peer["last_loss"]))
    print("%-10s %11.2fx   (fastest single steps: %.2fx)" % ("ratio", res["ratio"],
                                                            res["best_step_ratio"]))
    print("ours by op (ms per step): " + ", ".join(
        "%s %.0f" % (k, 1e3 * v) for k, v in mine["op_seconds_per_step"].items()))


if __name__ == "__main__":
    sys.exit(main())
