#!/bin/sh
# `make demo`: the main job on a built-in default.  For now the chain has its
# foundation only: the version, what this build detected, and the fp32 GEMM
# benchmark against the machine's measured peak.  It grows with each stage.
set -eu
cli=${1:-build/internlm}

echo "== libinternlm"
"$cli" info
echo
echo "== fp32 GEMM against the measured FMA peak (internlm bench gemm)"
"$cli" bench gemm
