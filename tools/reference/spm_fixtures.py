#!/usr/bin/env python3
"""Reference fixtures for the SentencePiece-BPE tokenizer tests.

Everything expected here comes from the `sentencepiece` library (not from
libinternlm): it trains the small models, encodes the test corpus with every
model and decodes id sequences.  The C tests (tests/test_tokenizer.c) read:

  tests/fixtures/tokenizer/spm_corpus.bin.gz   the test texts: u32 LE length +
                                               bytes, repeated (raw bytes, so
                                               invalid UTF-8 can be included)
  tests/fixtures/tokenizer/spm/<name>.model.gz models trained here
  tests/fixtures/tokenizer/spm_<name>.json     per model: for every text the
                                               number of ids and the FNV-1a-64
                                               hash of the ids (u32 LE), the
                                               full ids of the first texts, the
                                               hash of decode(ids); decodes of
                                               random id sequences

Run:  /path/to/venv/bin/python tools/reference/spm_fixtures.py
(needs sentencepiece and, for the Mistral model, mistral-common; the texts
come from Debian's fortunes, fortunes-zh and /usr/include).
"""
import gzip, json, os, random, struct, sys, tempfile

import sentencepiece as spm

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
FORTUNES = "/usr/share/games/fortunes"
SHARED = os.environ.get("ILM_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
PYDEPS = os.path.join(ROOT, ".cache", "pydeps")


def fnv64(ids):
    h = 0xCBF29CE484222325
    for b in b"".join(struct.pack("<I", i & 0xFFFFFFFF) for i in ids):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def fnv64_bytes(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def read(path, limit=None):
    with open(path, "rb") as f:
        return f.read(limit)


def fortunes(name):
    """The fortunes of one file, split at the '%' lines."""
    return [p.strip(b"\n") for p in read(os.path.join(FORTUNES, name)).split(b"\n%\n") if p.strip()]


def corpus():
    """About 250 KB of mixed test text, as a list of byte strings."""
    rng = random.Random(1234)
    texts = []
    for name, n in [("computers", 150), ("science", 70), ("songs-poems", 30), ("definitions", 50)]:
        texts += rng.sample(fortunes(name), n)
    for name, n in [("tang300", 60), ("song100", 40), ("chinese", 160)]:
        texts += rng.sample(fortunes(name), n)
    for path in ["/usr/include/stdio.h", "/usr/include/string.h"]:
        src = read(path)
        texts += [src[i:i + 3000] for i in range(0, len(src), 3000)]
    texts += [
        b"", b" ", b"  ", b"\n", b"\t", b"a", b"   leading and trailing   ", b"x  y   z    w",
        b"\t\ttabs\tinside\t", b"line1\nline2\r\nline3\n\n\nend", b"1234567890 3.14159 -42 1e10 0x7f",
        b"2024-11-28 12:34:56", "emoji 😀😃😄 👍🏽 👨‍👩‍👧 🇨🇳".encode(), "café naïve Ωmega ß".encode(),
        "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ （）".encode(), "e\u0301 combining".encode(),
        "Ⅻ ½ ﬁ ㎏ ① ™".encode(), "mixed 中文 English 日本語 한국어 русский".encode(),
        "▁ already ▁▁ has the space symbol".encode(), b"<s> </s> <unk> <pad>",
        b"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", b"[UNUSED_TOKEN_145] [TOOL] ```code```",
        b"invalid \xff\xfe bytes \xc3 \xe4\xbd here", b"nul \x00 byte", b"\xf0\x9f\x98",
        b"trailing incomplete \xe4\xbd", "数字123和456混合".encode(), "全角　空格".encode(),
        b"x" * 300, b" " * 50 + b"spaces", ("长" * 200).encode(),
    ]
    # A few long texts, so encoding of whole documents is covered too.
    big = fortunes("computers")
    texts += [b"\n\n".join(rng.sample(big, 40)) for _ in range(3)]
    return texts


def train(name, text_path, **opts):
    prefix = os.path.join(tempfile.mkdtemp(), name)
    spm.SentencePieceTrainer.train(input=text_path, model_prefix=prefix, model_type="bpe",
                                   minloglevel=2, **opts)
    return read(prefix + ".model")


TRAINED = {
    # Default normalizer (nmt_nfkc charsmap), dummy prefix, whitespace cleanup,
    # no byte fallback: unknown characters become <unk>.
    "nfkc_unk": dict(vocab_size=3000, character_coverage=0.98),
    # InternLM2's options plus user-defined and control symbols.
    "identity_bytes": dict(vocab_size=4000, normalization_rule_name="identity", byte_fallback=True,
                           split_digits=True, add_dummy_prefix=False, remove_extra_whitespaces=False,
                           user_defined_symbols=["<|im_start|>", "<|im_end|>", "[TOOL]", "```"],
                           control_symbols=["<ctrl0>"], character_coverage=0.995),
    # Whitespace as a suffix, byte fallback, digits split.
    "suffix_bytes": dict(vocab_size=3000, normalization_rule_name="identity", byte_fallback=True,
                         treat_whitespace_as_suffix=True, split_digits=True, character_coverage=0.99),
    # Pieces may span whitespace; whitespace-only pieces allowed.
    "no_ws_split": dict(vocab_size=3500, normalization_rule_name="identity", byte_fallback=True,
                        character_coverage=0.99,
                        split_by_whitespace=False, allow_whitespace_only_pieces=True,
                        remove_extra_whitespaces=True),
}


def main():
    os.makedirs(os.path.join(OUT, "spm"), exist_ok=True)
    texts = corpus()
    with gzip.GzipFile(os.path.join(OUT, "spm_corpus.bin.gz"), "wb", mtime=0) as f:
        for t in texts:
            f.write(struct.pack("<I", len(t)) + t)
    print("corpus: %d texts, %d bytes" % (len(texts), sum(map(len, texts))))

    # Training text: fortunes not used above as much as possible (English + Chinese).
    train_txt = os.path.join(tempfile.mkdtemp(), "train.txt")
    with open(train_txt, "wb") as f:
        for name in ["people", "work", "politics", "wisdom", "tang300", "song100"]:
            f.write(b"\n".join(fortunes(name)) + b"\n")
        f.write(b"\n".join(fortunes("chinese")[:4000]) + b"\n")
        f.write(read("/usr/include/stdlib.h") + b"\n")

    models = [("internlm2", "shared:tokenizers/internlm2.model", None),
              ("internlm", "shared:tokenizers/internlm.model", None),
              ("mistral_v1", "pydeps:mistral_common/data/tokenizer.model.v1", None)]
    for name, opts in TRAINED.items():
        data = train(name, train_txt, **opts)
        with gzip.GzipFile(os.path.join(OUT, "spm", name + ".model.gz"), "wb", mtime=0) as f:
            f.write(data)
        models.append((name, "fixture:spm/%s.model.gz" % name, data))

    for name, source, data in models:
        kind, rel = source.split(":", 1)
        if data is None:
            base = SHARED if kind == "shared" else PYDEPS
            data = read(os.path.join(base, rel))
        sp = spm.SentencePieceProcessor(model_proto=data)
        chunks, heads = [], []
        for i, t in enumerate(texts):
            ids = sp.encode(t)
            dec = sp.decode(ids).encode("utf-8")
            chunks.append([len(ids), fnv64(ids), fnv64_bytes(dec), len(dec)])
            if i < 40:
                heads.append(ids)
        rng = random.Random(hash(name) & 0xFFFF)
        n = sp.get_piece_size()
        decodes = []
        for k in range(60):
            seq = [rng.randrange(n) for _ in range(rng.randrange(1, 25))]
            if k % 3 == 0:  # runs of byte pieces: split and invalid UTF-8
                seq = [sp.piece_to_id("<0x%02X>" % rng.randrange(256)) for _ in range(6)] + seq[:5]
                seq = [i for i in seq if i != sp.unk_id() or k % 2]
            dec = sp.decode(seq).encode("utf-8")
            decodes.append([seq, fnv64_bytes(dec), len(dec)])
        with open(os.path.join(OUT, "spm_%s.json" % name), "w") as f:
            json.dump({"name": name, "source": source, "vocab_size": n,
                       "bos": sp.bos_id(), "eos": sp.eos_id(), "unk": sp.unk_id(),
                       "chunks": chunks, "head_ids": heads, "decodes": decodes}, f,
                      separators=(",", ":"))
        print("%-15s %6d pieces, %7d ids over the corpus" % (name, n, sum(c[0] for c in chunks)))


if __name__ == "__main__":
    sys.exit(main())
