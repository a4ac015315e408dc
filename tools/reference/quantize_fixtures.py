#!/usr/bin/env python3
"""Reference fixtures for quantizing to the GGUF block formats the library
writes (Q8_0, Q4_0, Q4_1; tests/test_tensor.c): the expected bytes come from
the `gguf` package's gguf.quants.quantize (numpy; Q8_0 is documented there
as bit-exact with ggml's reference quantize_row_q8_0, Q4_0 / Q4_1 follow
ggml's quantize_row_q4_0_ref / q4_1_ref), never from libinternlm.

    /work/venv-ref/bin/python tools/reference/quantize_fixtures.py

Writes tests/fixtures/tensor/quantize.json: per type, the float32 input
(hex of its little-endian bytes), its element count, and the quantized
blocks (hex).  The input has random blocks of varied scale, an all-zero
block, a constant block, blocks whose scaled values land on .5 ties, and a
block whose largest magnitude is negative.
"""
import json
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "tensor")


def inputs(rng, nblocks):
    x = rng.standard_normal(size=(nblocks, 32)).astype(np.float32)
    x *= (2.0 ** rng.uniform(-8, 4, size=(nblocks, 1))).astype(np.float32)
    x[0] = 0.0
    x[1] = -1.25
    x[2] = (np.arange(32, dtype=np.float32) - 16) / 2  # ties after scaling
    x[3] = np.linspace(-7, 3, 32, dtype=np.float32)     # the largest magnitude negative
    x[4, :4] = [65000.0, -3e-6, 1e-30, -0.0]
    return x.reshape(-1)


def main():
    rng = np.random.default_rng(20261204)
    from importlib.metadata import version
    out = {"versions": {"gguf": version("gguf"), "numpy": np.__version__},
           "cases": []}
    for qtype in (T.Q8_0, T.Q4_0, T.Q4_1):
        x = inputs(rng, 48)
        q = quants.quantize(x, qtype).reshape(-1)
        out["cases"].append({"type": qtype.name.lower(), "n": int(x.size),
                             "input": x.tobytes().hex(), "blocks": q.tobytes().hex()})
    with open(os.path.join(OUT, "quantize.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
