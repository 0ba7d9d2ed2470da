#!/bin/sh
# SPDX-License-Identifier: MIT
# benchmarks/run.sh: build pymemtrace's benchmarks into build-bench/ and print the table of ratios.
#
#   benchmarks/run.sh [bench.py options]      e.g. --quick, --reps 5, --sections 1,2, --dense 80000
#
# Needs: gcc, clang, g++, libbenchmark-dev, python3-dev (3.11), systemtap-sdt-dev, valgrind; for sections 2-5 root
# and bpftrace; heaptrack for its rows (--no-heaptrack skips them). 4-5 minutes on 2 idle cores,
# up to 8 on a busy machine; --quick: about 1 minute.
# --sections 7 (Python 3.14 beside tracemalloc and memray, benchmarks/peers_314.py): also the meson
# build's pymemtrace-engine (build/src/engine/) and the root tools/sid-root.sh builds or reuses.
# --sections 9 (the flow's rate, bpftrace beside pymemtrace-engine, benchmarks/flow_rate.py): the
# meson build's engine and cMemLeak (build/).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${PYMEMTRACE_BENCH_BUILD:-$root/build-bench}
# Debian's Python, built --with-dtrace: CPython's own probes for section 3. bench.py runs the
# workloads on a private copy of it (and of libc): see bench.py's docstring.
python=/usr/bin/python3.11
mkdir -p "$build"
cd "$root"

cflags="-O2 -g -Wall -Wextra -Wpedantic -Werror -Iinclude"
cc $cflags -std=c99 -fPIC -shared $(pkg-config --cflags python3) benchmarks/benchext.c \
    -o "$build/benchext$($python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
cc $cflags -std=c99 -pthread -DPYMEMTRACE_CONFIG_NOP5=1 benchmarks/traced_loop.c \
    -o "$build/traced_loop_nop5"
cc $cflags -std=c99 -pthread -DPYMEMTRACE_CONFIG_NOP5=0 benchmarks/traced_loop.c \
    -o "$build/traced_loop_nop1"
for compiler in gcc clang; do
    $compiler $cflags -std=c99 benchmarks/pair_instructions.c -o "$build/pair_instructions_$compiler"
done
for wrapped in 0 1; do
    cc $cflags -std=c99 -DCODESIZE_WRAPPED=$wrapped -c benchmarks/codesize.c \
        -o "$build/codesize$wrapped.o"
done
c++ $cflags -std=c++17 $(pkg-config --cflags python3-embed benchmark) benchmarks/untraced.cpp \
    -o "$build/untraced" $(pkg-config --libs python3-embed benchmark)

exec $python benchmarks/bench.py "$build" "$@"
