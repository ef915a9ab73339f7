#!/usr/bin/env bash
# Installs every Debian 12 package lmforge needs to build, test and run. A no-op when all are
# present. The CUDA toolkit (nvcc, cuBLASLt, cuDNN, NCCL) is not a Debian package: when
# /usr/local/cuda/bin/nvcc exists the CUDA backend is built, otherwise CPU only.
set -euo pipefail
PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libopenblas-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev
  libsentencepiece-dev libutf8proc-dev libpcre2-dev libgtest-dev libbenchmark-dev
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
