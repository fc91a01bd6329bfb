#!/usr/bin/env bash
# Installs the Debian packages mobileclip.c needs to build and test.
# Run as root (or with sudo).  Safe to run again.
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
PKGS="build-essential pkg-config clang libclang-rt-14-dev python3
      zlib1g-dev libpng-dev libjpeg62-turbo-dev libwebp-dev
      libutf8proc-dev libpcre2-dev libcurl4-openssl-dev libomp-dev libsqlite3-dev
      python3-numpy python3-pil python3-torch python3-torchvision
      python3-pytest python3-pip python3-venv python3-setuptools python3-wheel
      libopenmpi-dev openmpi-bin
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
      chromium fonts-dejavu-core libmicrohttpd-dev"
# python3-pil / python3-torchvision: Pillow 9.4 and torchvision 0.14, the oracle of
# tests/test_dr_oracle.py (re-applied augmentations on generated shards);
# python3-torch: PyTorch 1.13, which reads what 'convert --format pt' writes
# (tests/test_convert_pt.py);
# libsqlite3-dev: the photo index (src/search/);
# python3-pytest ... python3-wheel: the Python package (python/) and its tests
# (tests/test_python.sh: pytest, and 'pip install ./python' offline into a venv);
# libopenmpi-dev / openmpi-bin: data-parallel training (src/dist/, mpirun in the tests);
# gcc-aarch64-linux-gnu ... qemu-user: the NEON cross test; chromium (headless) and a
# font: tests/test_report.sh renders the training report and keeps a screenshot;
# libmicrohttpd-dev: the HTTP server of 'mobileclip serve' (src/serve/).
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
