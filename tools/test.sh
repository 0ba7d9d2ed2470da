#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's test command: installs what is missing, builds, runs every test suite
# (unit, python, toolchains, tracer). Extra arguments go to `meson test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
if [ -d build/meson-private ]; then
  meson setup --reconfigure build -Dtests=true >/dev/null
else
  meson setup build -Dtests=true >/dev/null
fi
meson compile -C build
meson test -C build --print-errorlogs "$@"
