#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs, from Debian 12's packages, whatever the build, the tests and the tracer need and is
# missing. Idempotent; needs root (apt-get) only when something is missing.
#   bash tools/install-deps.sh          everything: build, every test suite, the tracer
#   bash tools/install-deps.sh --demo   what tools/demo.sh needs: build cMemLeak, trace, html
set -euo pipefail

demo_packages=(
  meson ninja-build pkg-config              # build
  gcc g++ binutils                          # cMemLeak (C++), the runner's note reader, --native (addr2line)
  systemtap-sdt-dev                         # <sys/sdt.h>
  python3 python3-dev                       # Debian's Python, built --with-dtrace
  bpftrace util-linux procps                # the tracer; taskset, setpriv; ps
)
test_packages=(
  cmake                                     # how meson finds doctest
  clang lld                                 # every compiler and linker the tests use
  gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user-static  # the aarch64 probes (suite cross)
  qemu-system-arm debootstrap cpio          # an arm64 guest that traces them (suite arm64)
  doctest-dev libbenchmark-dev valgrind     # C++ tests and benchmarks; callgrind's counts
  python3-pytest
  cython3 python3-mesonpy python3-pip python3-setuptools  # tests/redirect's routes; pyproject.toml
  pybind11-dev                              # tests/redirect: a C++ extension (operator new)
  chromium                                  # headless, to test the --report html page
  libbpf-dev libelf-dev zlib1g-dev bpftool  # pymemtrace-engine: libbpf, its skeletons (clang above)
  debootstrap                               # tools/sid-root.sh: CPython 3.14, 3.15 from Debian unstable
)
case "${1:-}" in
  --demo) packages=("${demo_packages[@]}") ;;
  "") packages=("${demo_packages[@]}" "${test_packages[@]}") ;;
  *) echo "usage: bash tools/install-deps.sh [--demo]" >&2; exit 2 ;;
esac

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
# npm fetches d3 and d3-flame-graph for --report html (below); Node.js from elsewhere has its own.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "pymemtrace: missing Debian packages: ${missing[*]}" >&2
    echo "  install them as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "pymemtrace: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The JavaScript --report html inlines: the versions pinned by tools/flamegraph/package-lock.json,
# into tools/flamegraph/node_modules, where the runner reads them. No install scripts run.
flamegraph="$(dirname "$0")/flamegraph"
if ! cmp -s "$flamegraph/package-lock.json" "$flamegraph/node_modules/.installed-lock.json"; then
  (cd "$flamegraph" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null \
     && cp package-lock.json node_modules/.installed-lock.json)
fi

# bpftrace works without tracefs but then cannot detach cleanly.
if [ "$(id -u)" -eq 0 ] && [ ! -e /sys/kernel/tracing/uprobe_events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi
