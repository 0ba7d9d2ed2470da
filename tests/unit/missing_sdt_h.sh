#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A build that includes the headers where <sys/sdt.h> is missing says it has no probes (a
# #warning naming systemtap-sdt-dev) rather than let the user find out from an empty trace; one
# that disabled probes on purpose (PYMEMTRACE_CONFIG_DISABLE=1) stays quiet, and so does a build
# that has the header. The header is hidden for real, as on a machine without the package: in a
# private mount namespace, its directory is covered by a copy without sdt.h.
# Exit 77 (skipped), with the reason, when no mount namespace can be made (not root, no user
# namespaces).
# Usage: missing_sdt_h.sh SOURCE_DIR WORK_DIR CC CXX [CC CXX ...]
set -uo pipefail
src=$(cd "$1" && pwd)
work=$2
shift 2

sdt_h=$(printf '#include <sys/sdt.h>\n' | "$1" -x c -E -H - 2>&1 >/dev/null | sed -n 's/^\. //p')
sdt_dir=$(dirname "$sdt_h")

if [ -z "${PYMEMTRACE_SDT_H_HIDDEN:-}" ]; then
  if [ ! -f "$sdt_h" ]; then
    echo "<sys/sdt.h> is missing before it was hidden (apt-get install systemtap-sdt-dev)"
    exit 1
  fi
  rm -rf "$work" && mkdir -p "$work"
  unset CFLAGS CXXFLAGS CPPFLAGS
  printf '#include <pymemtrace/pymemtrace.h>\n' >"$work/includes_headers.c"
  printf '#include <pymemtrace/pymemtrace.hpp>\n' >"$work/includes_headers.cpp"
  printf '#include <pymemtrace/pymemtrace.h>\n#if !PYMEMTRACE_HAVE_USDT\n#error no probes\n#endif\n' \
    >"$work/has_probes.c"
  # The directory of sdt.h as it is, minus sdt.h (and its sdt-config.h).
  cp -a "$sdt_dir" "$work/without-sdt-h"
  rm -f "$work/without-sdt-h/sdt.h" "$work/without-sdt-h/sdt-config.h"
  namespace=(unshare --mount --propagation private)
  [ "$(id -u)" -eq 0 ] || namespace=(unshare --map-root-user --mount --propagation private)
  if ! "${namespace[@]}" true 2>/dev/null; then
    echo "SKIP: cannot make a private mount namespace (${namespace[*]}): run as root"
    exit 77
  fi
  failed=0
  # With the header in place: probes, no warning (the check below must not pass by accident).
  for compiler in "$@"; do
    if out=$("$compiler" -x c -fsyntax-only -isystem "$src/include" "$work/has_probes.c" 2>&1) \
        && [ -z "$out" ]; then
      echo "ok   $compiler, sys/sdt.h present: probes, no warning"
    else
      echo "FAIL $compiler, sys/sdt.h present: $out"; failed=1
    fi
  done
  PYMEMTRACE_SDT_H_HIDDEN=1 "${namespace[@]}" bash "$0" "$src" "$work" "$@" || failed=1
  exit $failed
fi

# In the private mount namespace: hide sdt.h, then build.
mount --bind "$work/without-sdt-h" "$sdt_dir" || exit 1
if printf '#include <sys/sdt.h>\n' | "$1" -x c -fsyntax-only - 2>/dev/null; then
  echo "FAIL: <sys/sdt.h> is still found after covering $sdt_dir"
  exit 1
fi
echo "ok   <sys/sdt.h> hidden ($sdt_dir covered)"
failed=0
language=c
for compiler in "$@"; do
  if [ $language = c ]; then
    source=$work/includes_headers.c std=-std=c99 language=c++
  else
    source=$work/includes_headers.cpp std=-std=c++17 language=c
  fi
  # As a user builds: the headers from a system include directory (meson's is_system dependency).
  build=("$compiler" "$std" -Wall -Wextra -Wpedantic -fsyntax-only -isystem "$src/include" "$source")
  if out=$("${build[@]}" 2>&1) && [[ $out == *warning*"systemtap-sdt-dev"* ]]; then
    echo "ok   $compiler $(basename "$source"), no sys/sdt.h: warns, naming systemtap-sdt-dev"
  else
    echo "FAIL $compiler $(basename "$source"), no sys/sdt.h: expected a warning naming" \
         "systemtap-sdt-dev, got: $out"
    failed=1
  fi
  if out=$("${build[@]}" -DPYMEMTRACE_CONFIG_DISABLE=1 2>&1) && [ -z "$out" ]; then
    echo "ok   $compiler $(basename "$source"), no sys/sdt.h, PYMEMTRACE_CONFIG_DISABLE=1: quiet"
  else
    echo "FAIL $compiler $(basename "$source"), no sys/sdt.h, PYMEMTRACE_CONFIG_DISABLE=1: $out"
    failed=1
  fi
done
exit $failed
