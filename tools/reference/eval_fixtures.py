#!/usr/bin/env python3
"""Reference fixtures for the evaluator, computed by lm-eval itself.

Every expected value comes from EleutherAI's lm-evaluation-harness
(`lm_eval` 0.4.13): its `HFLM` model class does the tokenization, the
windowing, the forward passes (transformers' `LlamaForCausalLM`, fp32, CPU)
and the generation; its `ConfigurableTask.process_results` turns the
multiple-choice log-likelihoods into acc / acc_norm.  Nothing here is
libinternlm code.  The model is a random-weight LLaMA with a small
SentencePiece BPE tokenizer trained here, so the file is small and CI needs
no torch.

Output, under tests/fixtures/eval/:
  model/          config.json, generation_config.json, model.safetensors
                  (save_pretrained, fp32, tied embeddings) and the tokenizer
                  as a Hugging Face LlamaTokenizer directory: tokenizer.model,
                  tokenizer_config.json, special_tokens_map.json
  lmeval.json     compact JSON:
    versions, model (config summary), tokenizer (trainer options, bos/eos ids,
    add_bos_token), rules (lm-eval's rules in words, as read in its code),
    mmlu.subjects[] = {subject, questions[] = {row, question, choices, gold,
        gold_letter, candidates[4] = {context, continuation, context_ids,
        continuation_ids, whole_ids, context_is_prefix_of_whole, logprob,
        is_greedy}, acc, acc_norm, acc_bytes, pred, pred_norm}}
        (cloze: context "Question: {q}\\nAnswer:", continuations " {choice}",
        0-shot, first 8 rows of the TEST split)
    mmlu_no_bos: the same requests through HFLM(add_bos_token=False):
        per candidate {context_ids, continuation_ids, logprob, is_greedy}
    gsm8k.items[] = {row, question, context (5-shot prompt of rows 0-4),
        context_ids, gen_kwargs, until_used (with EOS added by lm-eval),
        output_ids (raw tokens generate() returned after the prompt),
        generated (the string lm-eval returns), step_margins (top1 - top2
        logit at each generated position, from one full forward)};
        gsm8k.extra_stop_items: row 5 again with until [a word the model does
        write, "\n\n"], since it never writes "Question:" or a blank line
    rolling: max_length 64; docs[] = {text, ids (tok_encode), windows[] =
        {context_ids, continuation_ids, logprob}, loglikelihood (lm-eval's
        sum), n_tokens (scored), words, bytes, word_perplexity,
        byte_perplexity, bits_per_byte (lm-eval's aggregations on this doc)}
    tokenizer.fast_vs_sentencepiece: lm-eval ran LlamaTokenizerFast; asserted
        equal to sentencepiece ([BOS] + encode, decode) on every string here

Run:  .venv-ref/bin/python tools/reference/eval_fixtures.py
(venv: torch (CPU), transformers 4.57, sentencepiece, safetensors,
lm_eval==0.4.13; data from ../shared/data or $ILM_SHARED_DATA.)
"""
import csv, glob, io, json, math, os, random, re, shutil, sys, tempfile

import numpy as np
import torch
import transformers
import safetensors
import sentencepiece as spm
from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

import lm_eval
from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask
from lm_eval.api import metrics as lm_metrics
from lm_eval.models.huggingface import HFLM

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "eval")
MODEL_DIR = os.path.join(OUT, "model")
SHARED = os.environ.get("ILM_SHARED_DATA", "/work/shared/data")
if not os.path.isdir(SHARED):
    SHARED = os.path.join(ROOT, "..", "shared", "data")

SEED = 4242
SUBJECTS = ["abstract_algebra", "anatomy", "astronomy"]
N_ROWS = 8
GSM_SHOTS, GSM_ROWS = [0, 1, 2, 3, 4], [5, 6, 7]
GEN_KWARGS = {"until": ["Question:", "\n\n"], "do_sample": False, "max_gen_toks": 32}
ROLLING_MAX_LENGTH = 64

# Llama-2-like SentencePiece options (identity normalizer, dummy prefix, digits
# split, byte fallback), small vocabulary.
SPM_OPTS = dict(model_type="bpe", vocab_size=1000, byte_fallback=True,
                normalization_rule_name="identity", add_dummy_prefix=True,
                remove_extra_whitespaces=False, split_digits=True,
                allow_whitespace_only_pieces=True, character_coverage=0.9995,
                unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                max_sentence_length=8192, num_threads=2, minloglevel=2,
                input_sentence_size=0, shuffle_input_sentence=False)

MODEL_CFG = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                 num_hidden_layers=2, intermediate_size=128, vocab_size=1000,
                 tie_word_embeddings=True, rope_theta=1e4, rope_scaling=None,
                 max_position_embeddings=4096, rms_norm_eps=1e-5, hidden_act="silu",
                 attention_bias=False, mlp_bias=False, bos_token_id=1, eos_token_id=2,
                 pad_token_id=None, torch_dtype="float32")


def jdump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")


def versions():
    return {"lm_eval": lm_eval.__version__ if hasattr(lm_eval, "__version__") else
            __import__("importlib.metadata").metadata.version("lm_eval"),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "sentencepiece": spm.__version__, "safetensors": safetensors.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}


# ------------------------------------------------------------------ data
def read_mmlu(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.reader(f)]


def read_gsm8k(n=None):
    rows = []
    with open(os.path.join(SHARED, "gsm8k", "test.jsonl"), encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
            if n and len(rows) >= n:
                break
    return rows


def wikitext_paragraphs(n):
    """The first n paragraphs of wiki.test.txt: lines that are neither blank
    nor a ' = Heading = ' line, without their newline (leading space kept)."""
    out = []
    with open(os.path.join(SHARED, "wikitext2", "wiki.test.txt"), encoding="utf-8") as f:
        for line in f:
            s = line.rstrip("\n")
            if not s.strip() or re.match(r"^ =( =)* .* =( =)* $", s):
                continue
            out.append(s)
            if len(out) == n:
                break
    return out


# ------------------------------------------------------------ model + tokenizer
def train_tokenizer(tmp):
    lines = []
    for p in sorted(glob.glob(os.path.join(SHARED, "mmlu", "dev", "*.csv"))):
        for r in read_mmlu(p):
            lines.extend(x for x in r[:5] if x.strip())
    lines.extend(r["question"] for r in read_gsm8k(400))
    txt = os.path.join(tmp, "train.txt")
    with open(txt, "w", encoding="utf-8") as f:
        for l in lines:
            f.write(l.replace("\n", " ") + "\n")
    prefix = os.path.join(tmp, "tok")
    spm.SentencePieceTrainer.train(input=txt, model_prefix=prefix, **SPM_OPTS)
    return prefix + ".model", len(lines)


# o_proj and down_proj get 3x model_fixtures.py's scale: with tied embeddings
# and the plain recipe the residual stream is dominated by the input token's
# embedding, so the model predicts its input token again and greedy generation
# is one repeated piece (':' 32 times here); 3x gives varied text.
OUT_PROJ_SCALE = 3.0
INIT = ("torch.manual_seed(seed); torch.Generator(seed) in named_parameters order: norm weights "
        "U(0.5,1.5), embed_tokens N(0,0.35^2), Linear [out,in] N(0,1/in), o_proj and down_proj "
        "times %g" % OUT_PROJ_SCALE)


def init_weights(model, seed):
    """As model_fixtures.py (norm weights U(0.5, 1.5), embeddings N(0, 0.35^2),
    Linear [out, in] N(0, 1/in)) with o_proj / down_proj scaled by
    OUT_PROJ_SCALE: the logits are O(1..15), not flat."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.35)
            else:
                s = OUT_PROJ_SCALE if ("o_proj" in name or "down_proj" in name) else 1.0
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]) * s)


def build_model():
    if os.path.isdir(MODEL_DIR):
        shutil.rmtree(MODEL_DIR)
    os.makedirs(MODEL_DIR)
    # a fixed folder: the trainer writes its input and output paths into the
    # .model's trainer_spec, so this keeps the file byte-identical between runs
    tmp = os.path.join(tempfile.gettempdir(), "ilm_eval_fixtures_spm")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    spm_path, n_lines = train_tokenizer(tmp)
    # slow LlamaTokenizer from the .model: writes tokenizer.model,
    # tokenizer_config.json (add_bos_token true, add_eos_token false, legacy)
    # and special_tokens_map.json, as Llama-2's hub directories have them
    tok = LlamaTokenizer(vocab_file=spm_path, legacy=True, add_bos_token=True,
                         add_eos_token=False, clean_up_tokenization_spaces=False)
    tok.save_pretrained(MODEL_DIR)
    for extra in ("added_tokens.json",):
        p = os.path.join(MODEL_DIR, extra)
        if os.path.exists(p):
            os.remove(p)
    cfg = LlamaConfig(**MODEL_CFG)
    cfg._attn_implementation = "eager"
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(cfg).float().eval()
    init_weights(model, SEED)
    model.save_pretrained(MODEL_DIR, safe_serialization=True)
    shutil.rmtree(tmp)
    total = sum(os.path.getsize(os.path.join(MODEL_DIR, f)) for f in os.listdir(MODEL_DIR))
    print("model dir: %s (%d bytes): %s" % (MODEL_DIR, total, sorted(os.listdir(MODEL_DIR))))
    assert total < 1_500_000, total
    return n_lines


def make_lm(**kw):
    return HFLM(pretrained=MODEL_DIR, batch_size=1, device="cpu", dtype="float32", **kw)


# ------------------------------------------------------------------ MMLU
def mmlu_task(docs):
    """A ConfigurableTask of lm-eval's own, multiple_choice, on local docs,
    so process_results is lm-eval's."""
    import datasets
    ds = datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})
    cfg = {"task": "mmlu_cloze_local", "custom_dataset": lambda **kw: ds,
           "test_split": "test", "output_type": "multiple_choice",
           "doc_to_text": lambda d: "Question: %s\nAnswer:" % d["question"],
           "doc_to_choice": lambda d: [d["A"], d["B"], d["C"], d["D"]],
           "doc_to_target": lambda d: "ABCD".index(d["answer"]),
           "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}, {"metric": "acc_bytes"}],
           "num_fewshot": 0}
    return ConfigurableTask(config=cfg)


def run_mmlu(lm, lm_nobos):
    out, nobos = [], []
    for subj in SUBJECTS:
        rows = read_mmlu(os.path.join(SHARED, "mmlu", "test", "%s_test.csv" % subj))[:N_ROWS]
        docs = [dict(question=r[0], A=r[1], B=r[2], C=r[3], D=r[4], answer=r[5]) for r in rows]
        task = mmlu_task(docs)
        qs, reqs = [], []
        for i, d in enumerate(docs):
            ctx = "Question: %s\nAnswer:" % d["question"]
            # the task's own 0-shot context and requests are the strings we name
            assert task.fewshot_context(d, 0) == ctx, repr(task.fewshot_context(d, 0))
            treqs = task.construct_requests(doc=d, ctx=ctx, metadata=(task.config.task, i, 1))
            conts = [" " + d[k] for k in "ABCD"]
            assert [r.arguments for r in treqs] == [(ctx, c) for c in conts]
            reqs.extend(treqs)
            qs.append((d, ctx, conts))
        res = lm.loglikelihood(reqs)
        res_nb = lm_nobos.loglikelihood(reqs)
        sq, snb = [], []
        for qi, (d, ctx, conts) in enumerate(qs):
            cands, cnb = [], []
            for j, cont in enumerate(conts):
                cids, kids = lm._encode_pair(ctx, cont)
                whole = lm.tok_encode(ctx + cont)
                lp, greedy = res[qi * 4 + j]
                cands.append({"context": ctx, "continuation": cont, "context_ids": cids,
                              "continuation_ids": kids, "whole_ids": whole,
                              "context_is_prefix_of_whole": whole[:len(cids)] == cids,
                              "logprob": lp, "is_greedy": greedy})
                c2, k2 = lm_nobos._encode_pair(ctx, cont)
                lp2, g2 = res_nb[qi * 4 + j]
                cnb.append({"context_ids": c2, "continuation_ids": k2, "logprob": lp2, "is_greedy": g2})
            pr = task.process_results(d, res[qi * 4:qi * 4 + 4])
            pr_nb = task.process_results(d, res_nb[qi * 4:qi * 4 + 4])
            lls = np.array([c["logprob"] for c in cands])
            choices = [d[k] for k in "ABCD"]
            sq.append({"row": qi, "question": d["question"], "choices": choices,
                       "gold": "ABCD".index(d["answer"]), "gold_letter": d["answer"],
                       "candidates": cands, "acc": pr["acc"], "acc_norm": pr["acc_norm"],
                       "acc_bytes": pr["acc_bytes"],
                       "pred": int(np.argmax(lls)),
                       "pred_norm": int(np.argmax(lls / np.array([float(len(c)) for c in choices]))),
                       "completion_len_chars": [len(c) for c in choices]})
            snb.append({"row": qi, "candidates": cnb, "acc": pr_nb["acc"], "acc_norm": pr_nb["acc_norm"]})
        acc = float(np.mean([q["acc"] for q in sq]))
        accn = float(np.mean([q["acc_norm"] for q in sq]))
        out.append({"subject": subj, "questions": sq, "acc": acc, "acc_norm": accn})
        nobos.append({"subject": subj, "questions": snb,
                      "acc": float(np.mean([q["acc"] for q in snb])),
                      "acc_norm": float(np.mean([q["acc_norm"] for q in snb]))})
        print("mmlu %-18s acc %.3f acc_norm %.3f" % (subj, acc, accn))
    return out, nobos


# ------------------------------------------------------------------ GSM8K
def gsm_prompt(rows, shots, q):
    s = "".join("Question: %s\nAnswer: %s\n\n" % (rows[i]["question"], rows[i]["answer"]) for i in shots)
    return s + "Question: %s\nAnswer:" % q


def run_gsm8k(lm):
    rows = read_gsm8k(max(GSM_ROWS) + 1)
    captured = []
    orig = lm._model_generate

    def spy(context, max_length, stop, **kw):
        o = orig(context, max_length, stop, **kw)
        captured.append({"input": context[0].tolist(), "output": o[0, context.shape[1]:].tolist(),
                         "stop": list(stop), "max_length": max_length, "kwargs": dict(kw)})
        return o
    lm._model_generate = spy
    items = []

    def one(r, gen_kwargs):
        ctx = gsm_prompt(rows, GSM_SHOTS, rows[r]["question"])
        req = Instance(request_type="generate_until", doc=rows[r],
                       arguments=(ctx, dict(gen_kwargs, until=list(gen_kwargs["until"]))), idx=0,
                       metadata=("gsm8k_local", r, 1))
        n0 = len(captured)
        (gen,) = lm.generate_until([req])
        cap = captured[n0]
        ids = lm.tok_encode(ctx)
        assert cap["input"] == ids, "generate_until's batch encoding differs from tok_encode"
        # margins of the greedy choices, from one full forward over prompt + output
        full = torch.tensor([ids + cap["output"]])
        with torch.no_grad():
            logits = lm.model(input_ids=full).logits[0].float()
        margins = []
        for t in range(len(cap["output"])):
            row = logits[len(ids) - 1 + t]
            top = torch.topk(row, 2)
            assert int(top.indices[0]) == cap["output"][t] or float(top.values[0] - row[cap["output"][t]]) < 1e-4
            margins.append(float(top.values[0] - top.values[1]))
        print("gsm8k row %d: %d prompt tokens, %d generated, until %r -> %r"
              % (r, len(ids), len(cap["output"]), gen_kwargs["until"], gen))
        return {"row": r, "question": rows[r]["question"], "context": ctx,
                "context_ids": ids, "n_context_ids": len(ids),
                "gen_kwargs": gen_kwargs, "until_used": cap["stop"],
                "max_length_passed_to_generate": cap["max_length"],
                "generate_kwargs": {k: v for k, v in cap["kwargs"].items() if not torch.is_tensor(v)},
                "output_ids": cap["output"],
                "output_text_raw": lm.tok_decode(cap["output"]),
                "generated": gen, "step_margins": margins,
                "min_margin": min(margins) if margins else None}

    for r in GSM_ROWS:
        items.append(one(r, GEN_KWARGS))
    # The random model never writes "Question:" or a blank line, so one more
    # request on the first item's prompt stops at a word it does write: the
    # first word (2+ characters) of its raw output after the first word.
    words = [w for w in items[0]["output_text_raw"].split() if len(w) >= 2][1:]
    extra = []
    if words:
        kw = dict(GEN_KWARGS, until=[words[0], "\n\n"])
        extra.append(one(GSM_ROWS[0], kw))
    lm._model_generate = orig
    return {"shots": GSM_SHOTS, "items": items, "extra_stop_items": extra}


# ------------------------------------------------------------------ rolling
def run_rolling(lm):
    from lm_eval import utils as lu
    docs = wikitext_paragraphs(2)
    reqs = [Instance(request_type="loglikelihood_rolling", doc={"text": d}, arguments=(d,), idx=0,
                     metadata=("wikitext_local", i, 1)) for i, d in enumerate(docs)]
    totals = lm.loglikelihood_rolling(reqs)
    out = []
    for d, tot in zip(docs, totals):
        ids = lm.tok_encode(d)
        wins = list(map(lu.make_disjoint_window,
                        lu.get_rolling_token_windows(token_list=ids, prefix_token=lm.prefix_token_id,
                                                     max_seq_len=lm.max_length, context_len=1)))
        scored = lm._loglikelihood_tokens([(None, a, b) for a, b in wins], disable_tqdm=True)
        wl = [{"context_ids": a, "continuation_ids": b, "logprob": s[0]} for (a, b), s in zip(wins, scored)]
        assert abs(sum(w["logprob"] for w in wl) - tot) < 1e-9, (sum(w["logprob"] for w in wl), tot)
        words, nbytes = ConfigurableTask.count_words(d), ConfigurableTask.count_bytes(d)
        out.append({"text": d, "ids": ids, "n_ids": len(ids), "windows": wl, "loglikelihood": tot,
                    "n_tokens": sum(len(b) for _, b in wins), "words": words, "bytes": nbytes,
                    "word_perplexity": lm_metrics.weighted_perplexity([(tot, words)]),
                    "byte_perplexity": lm_metrics.weighted_perplexity([(tot, nbytes)]),
                    "bits_per_byte": lm_metrics.bits_per_byte([(tot, nbytes)])})
        print("rolling: %d ids, %d windows, ll %.4f, words %d, bytes %d" % (len(ids), len(wins), tot, words, nbytes))
    agg = {"word_perplexity": lm_metrics.weighted_perplexity([(o["loglikelihood"], o["words"]) for o in out]),
           "byte_perplexity": lm_metrics.weighted_perplexity([(o["loglikelihood"], o["bytes"]) for o in out]),
           "bits_per_byte": lm_metrics.bits_per_byte([(o["loglikelihood"], o["bytes"]) for o in out])}
    return {"max_length": lm.max_length, "prefix_token_id": lm.prefix_token_id, "context_len": 1,
            "docs": out, "aggregate": agg}


def check_tokenizer(lm, doc):
    """lm-eval used transformers' LlamaTokenizerFast (converted from
    tokenizer.model); assert it gives sentencepiece's own ids ([BOS] + encode)
    on every string the fixture holds."""
    sp = spm.SentencePieceProcessor(model_file=os.path.join(MODEL_DIR, "tokenizer.model"))
    strings = []
    for subj in doc["mmlu"]["subjects"]:
        for q in subj["questions"]:
            for c in q["candidates"]:
                strings += [c["context"], c["context"] + c["continuation"], c["continuation"]]
    strings += [it["context"] for it in doc["gsm8k"]["items"]]
    strings += [d["text"] for d in doc["rolling"]["docs"]]
    for s in strings:
        assert lm.tok_encode(s) == [sp.bos_id()] + sp.encode(s), repr(s)
    gen = doc["gsm8k"]["items"] + doc["gsm8k"]["extra_stop_items"]
    for it in gen:
        assert sp.decode(it["output_ids"]) == it["output_text_raw"], it["row"]
    return {"strings_compared": len(strings), "equal": True,
            "decodes_compared": len(gen), "decode_equal": True,
            "rule": "tok_encode(s) == [1] + sentencepiece encode(s); tok_decode(ids) == sentencepiece decode(ids)"}


RULES = {
    "bos": "HFLM(add_bos_token=None) is the default: tok_encode passes no add_special_tokens, so the "
           "tokenizer's own setting decides; this LlamaTokenizer has add_bos_token true, so every "
           "tok_encode (context, context+continuation, rolling documents, generation prompts) starts "
           "with BOS id 1. Exception: a string that already starts with the BOS text ('<s>') is "
           "encoded with add_special_tokens=False. mmlu_no_bos is HFLM(add_bos_token=False).",
    "encode_pair": "n = len(context) - len(context.rstrip()); if n > 0 the context's trailing "
                   "whitespace moves to the front of the continuation. whole = tok_encode(context + "
                   "continuation), ctx = tok_encode(context), continuation_ids = whole[len(ctx):] "
                   "(the split is by count; ctx need not be a prefix of whole).",
    "empty_context": "context == '': continuation_ids = tok_encode(continuation, add_special_tokens="
                     "False); context_ids = [prefix_token_id] (BOS if the tokenizer has one, else EOS) "
                     "unless continuation_ids[0] == prefix_token_id, then context_ids = "
                     "continuation_ids[:1] and the rest is the continuation.",
    "loglikelihood": "input = (context_ids + continuation_ids)[-(max_length+1):][:-1]; log_softmax "
                     "of the logits (model dtype, fp32 here); logprob = sum over the last "
                     "len(continuation_ids) positions of logprob[target]; is_greedy = argmax at every "
                     "one of those positions equals the continuation token.",
    "acc": "pred = np.argmax(lls) (first index on ties); acc = pred == gold.",
    "acc_norm": "completion_len = [float(len(choice)) for choice in doc_to_choice(doc)]: Python "
                "characters (code points) of the choice WITHOUT the target_delimiter ' ' that the "
                "continuation carries; pred_norm = np.argmax(lls / completion_len); acc_norm = "
                "pred_norm == gold. acc_bytes is the same with len(choice.encode('utf-8')).",
    "generate_until": "prompt = tok_batch_encode (tokenizer default specials: BOS here), left-truncated "
                      "to max_length - max_gen_toks; until gets the EOS text appended ('</s>') if not "
                      "there; HF generate greedy (do_sample False, temperature removed), max_length = "
                      "prompt_len + max_gen_toks, stopping when a stop string appears in the decoded "
                      "tail; result = tok_decode(new tokens, skip_special_tokens=True), then for each "
                      "stop string in order s = s.split(stop)[0]. No strip.",
    "rolling": "ids = tok_encode(doc) (BOS included here, tokenizer default); windows = "
               "get_rolling_token_windows(ids, prefix_token=prefix_token_id, max_seq_len=L=max_length, "
               "context_len=1) then make_disjoint_window. First window: input [prefix] + ids[:L-1], "
               "predicts ids[:min(L, n)]. Then, with p = tokens predicted so far, each window predicts "
               "k = min(n - p, L) tokens ids[p:p+k], its input being ids[p+k-L-1 : p+k-1] (the L tokens "
               "before the last predicted one), so its context (input minus the predicted overlap) is "
               "ids[p+k-L-1 : p] (1 token for a full window; more for the last, shorter one). Each "
               "window is a loglikelihood request (context, continuation) of token ids; the document's "
               "loglikelihood is the plain sum. Every id of tok_encode(doc) is scored, so with BOS on, "
               "log p(BOS | prefix BOS) is part of the total.",
    "words_bytes": "words = len(re.split(r'\\s+', doc)) (leading/trailing whitespace each add an empty "
                   "field); bytes = len(doc.encode('utf-8')); word_perplexity = exp(-sum(ll)/sum(words)), "
                   "byte_perplexity = exp(-sum(ll)/sum(bytes)), bits_per_byte = -sum(ll)/sum(bytes)/ln 2.",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    n_lines = build_model()
    lm = make_lm()
    lm_nobos = make_lm(add_bos_token=False)
    tk = lm.tokenizer
    info_tok = {"class": type(tk).__name__, "spm_trainer": {k: v for k, v in SPM_OPTS.items()
                                                           if k not in ("num_threads", "minloglevel")},
                "training_text": "all non-empty fields (question, A-D) of the 57 mmlu/dev/*.csv + the first "
                                 "400 gsm8k test questions, one per line (%d lines)" % n_lines,
                "bos_id": tk.bos_token_id, "eos_id": tk.eos_token_id, "unk_id": tk.unk_token_id,
                "pad_id_lmeval": tk.pad_token_id, "add_bos_token": getattr(tk, "add_bos_token", None),
                "hflm_add_bos_token": lm.add_bos_token, "prefix_token_id": lm.prefix_token_id,
                "vocab_size": tk.vocab_size}
    mmlu, nobos = run_mmlu(lm, lm_nobos)
    gsm = run_gsm8k(lm)
    lm_roll = make_lm(max_length=ROLLING_MAX_LENGTH)
    rolling = run_rolling(lm_roll)
    doc = {"versions": versions(), "seed": SEED,
           "model": {"dir": "model", "architecture": "LlamaForCausalLM", "dtype": "float32",
                     "init": INIT,
                     "config": {k: v for k, v in MODEL_CFG.items() if k != "torch_dtype"},
                     "hflm": "HFLM(pretrained=model, batch_size=1, device='cpu', dtype='float32')",
                     "hflm_max_length": lm.max_length},
           "tokenizer": info_tok, "rules": RULES,
           "mmlu": {"split": "test", "rows": N_ROWS, "num_fewshot": 0,
                    "context": "Question: {question}\nAnswer:", "continuation": " {choice}",
                    "subjects": mmlu},
           "mmlu_no_bos": {"hflm": "HFLM(..., add_bos_token=False)", "subjects": nobos},
           "gsm8k": gsm, "rolling": rolling,
           "tolerance_hint": {"logprob_abs": 1e-4}}
    doc["tokenizer"]["fast_vs_sentencepiece"] = check_tokenizer(lm, doc)
    jdump(os.path.join(OUT, "lmeval.json"), doc)
    print("wrote %s (%d bytes)" % (os.path.join(OUT, "lmeval.json"),
                                   os.path.getsize(os.path.join(OUT, "lmeval.json"))))


if __name__ == "__main__":
    main()
