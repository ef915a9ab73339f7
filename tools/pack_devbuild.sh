#!/bin/bash
# Packs a shared-library CUDA build (cmake -DLMF_CUDA=ON -DLMF_SHARED=ON) into .devbuild/, the
# small folder the GPU machine gets (`carry: [".devbuild"]`, < 64 MiB): liblmforge.so, the
# libraries the GPU machine lacks (libutf8proc), the CUDA test binary and the benchmarks.
# Binaries find the library through their RPATH ($ORIGIN, $ORIGIN/..).
#   usage: tools/pack_devbuild.sh [build-shared]
set -euo pipefail
B=${1:-build-shared}
D=.devbuild
rm -rf "$D" && mkdir -p "$D/bin"
cp -a "$B"/liblmforge.so "$B"/libutf8proc.so* "$D/"
[ -x "$B/lmf_cuda_tests" ] && cp "$B/lmf_cuda_tests" "$D/"
for f in "$B"/bin/*; do [ -x "$f" ] && cp "$f" "$D/bin/"; done
du -sh "$D"
