#!/bin/bash
# Packs a shared-library CUDA build (cmake -DLMF_CUDA=ON -DLMF_SHARED=ON) into .devbuild/, the
# small folder the GPU machine gets (`carry: [".devbuild"]`, < 64 MiB): liblmforge.so, the
# libraries the GPU machine lacks (libutf8proc), the CUDA test binary and the benchmarks.
# Binaries find the library through their RPATH ($ORIGIN, $ORIGIN/..).
# With --tgz it also writes .devbuild.tgz (about a quarter of the size: the working tree plus a
# 40 MB .devbuild can exceed the 64 MiB a device call carries); the command then starts with
# `tar xzf .devbuild.tgz`.
#   usage: tools/pack_devbuild.sh [build-shared] [--tgz]
set -euo pipefail
B=build-shared
TGZ=0
for a in "$@"; do
  case "$a" in --tgz) TGZ=1 ;; *) B=$a ;; esac
done
D=.devbuild
rm -rf "$D" && mkdir -p "$D/bin"
cp -a "$B"/liblmforge.so "$B"/libutf8proc.so* "$D/"
[ -x "$B/lmf_cuda_tests" ] && cp "$B/lmf_cuda_tests" "$D/"
for f in "$B"/bin/*; do [ -x "$f" ] && cp "$f" "$D/bin/"; done
du -sh "$D"
if [ "$TGZ" = 1 ]; then
  tar czf .devbuild.tgz "$D" && du -sh .devbuild.tgz
fi
