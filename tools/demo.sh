#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's main job: installs what is missing, builds, then traces examples/ex_dtrace.py
# with toolkit/pymemtrace-trace and prints where in Python its extension allocates (summary),
# and what a leaking run never frees (leaks). Needs root, as any tracer does.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh --demo   # not the tests' compilers, Chromium or qemu
if [ ! -d build/meson-private ]; then
  meson setup build >/dev/null
fi
meson compile -C build >/dev/null

export PYTHONPATH="$PWD/build/src"   # where `from pymemtrace import cMemLeak` finds the build
python=/usr/bin/python3              # Debian's, built --with-dtrace

echo "== pymemtrace-trace --report summary -- python3 examples/ex_dtrace.py cmalloc"
toolkit/pymemtrace-trace --report summary -- "$python" examples/ex_dtrace.py cmalloc
echo
echo "== pymemtrace-trace --report leaks -- python3 examples/ex_dtrace.py leak --count 3 --size 333"
toolkit/pymemtrace-trace --report leaks -- "$python" examples/ex_dtrace.py leak --count 3 --size 333
echo
echo "== pymemtrace-trace --report html --depth 3 -o build/flamegraph.html -- python3 examples/ex_dtrace.py cmalloc"
toolkit/pymemtrace-trace --report html --depth 3 -o build/flamegraph.html -- "$python" examples/ex_dtrace.py cmalloc >/dev/null
echo "the flame graph page: build/flamegraph.html (self-contained; open it in a browser)"
