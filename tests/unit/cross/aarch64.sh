#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The doctest suite (tests/unit/meson.build, the one source list) cross-built for aarch64 with
# Debian's cross toolchain and run under qemu-user: the probe notes of aarch64 binaries name the
# AAPCS64 argument registers, one site per probe, semaphores in pairs. Then the runner's note
# reader (pymemtrace.trace.elf) reads the same files. Tracing itself cannot be tested here: qemu
# user mode does not run uprobes (the kernel never sees the guest's instructions).
# Also checks that an aarch64 build without <sys/sdt.h> warns (config.h).
# Exit 77 (skipped), with the reason, when the cross toolchain or qemu is missing.
# Usage: aarch64.sh MESON SOURCE_DIR WORK_DIR PYTHON
set -uo pipefail
meson=$1
src=$(cd "$2" && pwd)
work=$3
python=$4
cross_file="$src/tests/unit/cross/aarch64-linux-gnu.ini"

for tool in aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ aarch64-linux-gnu-nm qemu-aarch64-static; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is missing; tools/install-deps.sh installs gcc-aarch64-linux-gnu," \
         "g++-aarch64-linux-gnu and qemu-user-static"
    exit 77
  fi
done
rm -rf "$work" && mkdir -p "$work/sdt-include/sys"
# As the toolchain matrix: only the flags the build gives, none from the caller.
unset CFLAGS CXXFLAGS CPPFLAGS LDFLAGS

# <sys/sdt.h> is one header for every architecture (it chooses by __aarch64__ itself; its
# sdt-config.h only says the assembler takes "?" section groups), but Debian's cross compiler does
# not search the host's /usr/include/x86_64-linux-gnu: the build gets it from a directory of its
# own, searched after the system ones.
sdt_h=$(printf '#include <sys/sdt.h>\n' | cc -x c -E -H - 2>&1 >/dev/null | sed -n 's/^\. //p')
if [ ! -f "$sdt_h" ]; then
  echo "the host's <sys/sdt.h> is missing (apt-get install systemtap-sdt-dev)"
  exit 1
fi
ln -s "$sdt_h" "$(dirname "$sdt_h")/sdt-config.h" "$work/sdt-include/sys/"
sdt_flag=-idirafter$work/sdt-include

failed=0
check() { # check DESCRIPTION COMMAND...: runs COMMAND, prints ok or FAIL with its output
  local description=$1 output
  shift
  if output=$("$@" 2>&1); then
    echo "ok   $description"
  else
    echo "FAIL $description"; echo "$output"; failed=1
  fi
}

# Without <sys/sdt.h> a build that wants probes says so; one that disabled them does not.
printf '#include <pymemtrace/pymemtrace.h>\n' >"$work/includes_headers.c"
warns_without_sdt_h() {
  local out
  out=$(aarch64-linux-gnu-gcc -fsyntax-only -isystem "$src/include" "$work/includes_headers.c" 2>&1)
  [[ $out == *"warning"*"systemtap-sdt-dev"* ]] || { echo "no warning: $out"; return 1; }
}
quiet_when_disabled() {
  local out
  out=$(aarch64-linux-gnu-gcc -fsyntax-only -DPYMEMTRACE_CONFIG_DISABLE=1 -isystem "$src/include" \
        "$work/includes_headers.c" 2>&1) && [ -z "$out" ] || { echo "$out"; return 1; }
}
check "aarch64 without sys/sdt.h: the build warns, naming systemtap-sdt-dev" warns_without_sdt_h
check "aarch64 without sys/sdt.h, PYMEMTRACE_CONFIG_DISABLE=1: no warning" quiet_when_disabled

build="$work/build"
check "meson setup (cross file $(basename "$cross_file"))" \
  "$meson" setup "$build" "$src" --cross-file "$cross_file" -Dunit_tests_only=true \
  "-Dc_args=$sdt_flag" "-Dcpp_args=$sdt_flag"
[ $failed -eq 0 ] || exit 1
check "cross build of the unit suite" "$meson" compile -C "$build"
[ $failed -eq 0 ] || exit 1
check "unit suite under qemu-aarch64 (notes read by tests/unit/stapsdt_notes.hpp)" \
  "$meson" test -C "$build" --no-rebuild --print-errorlogs
check "runner's note reader (pymemtrace.trace.elf) on the aarch64 files" \
  "$python" -B "$src/tests/unit/cross/check_runner_notes.py" "$src" aarch64-linux-gnu-nm \
  "$build/tests/unit/unit_tests" "$build/tests/unit/libfifty_a.so" "$build/tests/unit/libfifty_b.so"
exit $failed
