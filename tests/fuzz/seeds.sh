#!/bin/sh
# tests/fuzz/seeds.sh BUILD -- seed corpora for the fuzz harnesses in
# BUILD/seeds/<harness>/, made from the test fixtures and, for inputs that
# only the library can make (a tiny model, a corpus, a checkpoint), by each
# harness's seed mode (ILM_FUZZ_SEEDS=dir BUILD/fuzz_<harness>).  Nothing
# here is committed; `make fuzz` runs it when a harness changes.
set -eu
B=$1
S=$B/seeds
F=tests/fixtures
rm -rf "$S"
for h in gguf safetensors hf_config spm tokenizer_json tokenize chat configs corpus ckpt eval adapter; do
    mkdir -p "$S/$h"
done

# A packed input (tests/fuzz/fuzz.h): pack OUT NAME FILE [NAME FILE ...]
pack() {
    out=$1; shift; first=1
    : > "$out"
    while [ $# -gt 1 ]; do
        if [ $first = 1 ]; then printf '==> %s\n' "$1" >> "$out"; else printf '\n==> %s\n' "$1" >> "$out"; fi
        cat "$2" >> "$out"
        first=0; shift 2
    done
}

cp $F/formats/*.gguf $F/gguf/*.gguf "$S/gguf/"

for f in $F/formats/st_*.safetensors; do cp "$f" "$S/safetensors/"; done
pack "$S/safetensors/st_sharded.pack" config.json $F/model/gqa_tied/config.json \
    model.safetensors.index.json $F/formats/st_sharded/model.safetensors.index.json \
    model-00001-of-00002.safetensors $F/formats/st_sharded/model-00001-of-00002.safetensors \
    model-00002-of-00002.safetensors $F/formats/st_sharded/model-00002-of-00002.safetensors
ILM_FUZZ_SEEDS="$S/safetensors" "$B/fuzz_safetensors"

for n in all qv_rs; do
    pack "$S/adapter/lora_$n.pack" adapter_config.json $F/train/lora_$n/adapter_config.json \
        adapter_model.safetensors $F/train/lora_$n/adapter_model.safetensors
done

cp $F/formats/config_*.json "$S/hf_config/"
for d in $F/model/*/; do
    n=$(basename "$d")
    for c in "$d"config*.json; do cp "$c" "$S/hf_config/${n}_$(basename "$c")"; done
done

cp $F/tokenizer/train/tokenizer.model "$S/spm/train.model"
for f in $F/tokenizer/spm/*.model.gz; do   # those under the harness's max_len
    n=$(basename "$f" .gz)
    gunzip -c "$f" > "$S/spm/$n"
    [ $(wc -c < "$S/spm/$n") -le 65536 ] || rm "$S/spm/$n"
done

for n in gpt2 llama3 splits; do cp $F/tokenizer/bbpe_$n.json "$S/tokenizer_json/"; done
printf '{"add_bos_token": true, "add_eos_token": false, "chat_template": "<|im_start|>", "added_tokens_decoder": {"0": {"content": "<|endoftext|>", "special": true}, "2001": {"content": "<tool>", "special": true}}}' \
    > "$B/tokenizer_config.json"
pack "$S/tokenizer_json/with_config.pack" tokenizer.json $F/tokenizer/bbpe_gpt2.json \
    tokenizer_config.json "$B/tokenizer_config.json"
rm -f "$B/tokenizer_config.json"

# Byte 0 of a tokenize input: bit 0 the tokenizer, bits 1-3 the encode
# flags, bit 4 the decode flags.
printf '\000Hello, world!' > "$S/tokenize/ascii"
printf '\003 \344\275\240\345\245\275\357\274\214\344\270\226\347\225\214 123456' > "$S/tokenize/cjk"
printf '\016<|im_start|>user\nhi<|im_end|>\n<s></s>' > "$S/tokenize/special"
printf '\021\360\237\230\200 \377\376 \300\200 \355\240\200 tab\tnl\n  spaces   end' > "$S/tokenize/bytes"
printf '\037<|begin_of_text|>I'"'"'m   don'"'"'t  12345\r\n' > "$S/tokenize/llama3"

printf '[{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"}]' > "$S/chat/turns"
printf '[{"role": "environment", "name": "interpreter", "content": "4"}]' > "$S/chat/environment"
printf '[]' > "$S/chat/empty"
printf '[{"role": "user", "content": "\\u4f60\\u597d \\u0000 <|im_end|>", "name": "x"}]' > "$S/chat/escapes"

# Evaluation tasks: one per mode, each with its data (tests/fuzz/fuzz_eval.c).
T=$(mktemp -d)
printf 'What is 1 + 1?,3,2,B\n"Red, or blue?",red,blue,A\n' > "$T/mc.csv"
printf 'What is 0?,1,0,B\n' > "$T/few.csv"
printf '{"reader": {"path": "mc.csv", "header": false, "columns": ["q", "A", "B", "answer"], "fewshot_path": "few.csv"}, "header": "Quiz.\n", "fewshot": {"k": 1, "template": "{q} {answer}\n"}, "prompt": "{q}\nAnswer:", "mode": "ppl", "ppl": {"choices": {"A": " {A}", "B": " {B}"}, "gold": "{answer}"}}' > "$T/ppl.json"
pack "$S/eval/ppl" task.json "$T/ppl.json" mc.csv "$T/mc.csv" few.csv "$T/few.csv"
printf '{"reader": {"path": "mc.csv", "header": false, "columns": ["q", "A", "B", "answer"]}, "prompt": "{q}", "mode": "ppl", "ppl": {"choices": {"A": " A", "B": " B"}, "gold": "{answer}", "reduction": "whole"}}' > "$T/whole.json"
pack "$S/eval/whole" task.json "$T/whole.json" mc.csv "$T/mc.csv"
printf '{"question": "2+2?", "answer": "#### 4"}\n{"question": "3+3?", "answer": "#### 6"}\n' > "$T/m.jsonl"
printf '{"reader": {"path": "m.jsonl"}, "fewshot": {"ids": [0], "template": "Q: {question}\nA: {answer}\n\n"}, "prompt": "Q: {question}\nA:", "mode": "gen", "gen": {"max_tokens": 8, "stop": ["\n\n"], "postprocess": "gsm8k", "gold": "{answer}", "gold_postprocess": "gsm8k_gold", "metric": "f1"}}' > "$T/gen.json"
pack "$S/eval/gen" task.json "$T/gen.json" m.jsonl "$T/m.jsonl"
printf 'The quick brown fox jumps over the lazy dog.\n' > "$T/doc.txt"
printf '{"reader": {"path": "doc.txt", "format": "text"}, "mode": "rolling", "rolling": {"text": "{text}", "window": 8}}' > "$T/roll.json"
pack "$S/eval/rolling" task.json "$T/roll.json" doc.txt "$T/doc.txt"
printf ' = A = \n a ( b ) , " c " .\n = = S = = \n d @-@ e .\n = B = \n f .\n' > "$T/wiki.txt"
printf '{"reader": {"path": "wiki.txt", "format": "text", "document_start": "^ = [^=].* = $"}, "mode": "rolling", "rolling": {"text": "{text}", "window": 8, "preprocess": "wikitext_detokenizer"}}' > "$T/wiki.json"
pack "$S/eval/articles" task.json "$T/wiki.json" wiki.txt "$T/wiki.txt"
rm -rf "$T"

for h in configs corpus ckpt; do
    ILM_FUZZ_SEEDS="$S/$h" "$B/fuzz_$h"
done
