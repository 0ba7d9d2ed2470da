#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the doctest suite (the `unit_tests` target of tests/unit/meson.build: the one source
# list) with gcc and clang, at -O0, -O2 and -O2 -flto (buildtype debug, debugoptimized, and
# debugoptimized with b_lto), links it with bfd, gold and lld, and runs it: the probe notes must be
# sane with every toolchain (one site per probe, semaphores in .probes, pairs adjacent). LTO joins
# translation units into one assembly file, where the probes' .ifndef guards must keep a single
# copy. gcc's LTO plugin has no lld counterpart, and clang's none for bfd: those two pairs are
# left out.
#
# One throwaway meson build of the project per compiler and optimisation level, configured with
# -Dunit_tests_only=true (no Python, examples or benchmarks to look for); each linker is a
# `meson configure` of that build (c_link_args/cpp_link_args = -fuse-ld=LINKER), so only the links
# run again. The gcc and clang builds run side by side: while one configures or links (one core),
# the other compiles. Each binary's linker is checked from its notes (gold) or .comment (lld).
# Usage: toolchain_matrix.sh MESON SOURCE_DIR WORK_DIR
set -uo pipefail
meson=$1
src=$(cd "$2" && pwd)
work=$3
rm -rf "$work" && mkdir -p "$work"
# As the original hand-written builds: only the flags the build gives, none from the caller.
unset CFLAGS CXXFLAGS CPPFLAGS LDFLAGS

# The linker that linked ELF file $1, from what each leaves in it: gold a .note.gnu.gold-version
# section, lld a "Linker: ... LLD" .comment; neither of those: bfd.
# (Whole outputs, not `readelf | grep -q`: under pipefail, grep leaving early fails the pipe.)
linked_by() {
  local sections comment
  sections=$(readelf -W -S "$1") && comment=$(readelf -p .comment "$1") || return 1
  if [[ $sections == *.note.gnu.gold-version* ]]; then echo gold
  elif [[ $comment == *Linker:*LLD* ]]; then echo lld
  else echo bfd
  fi
}

# One build: configures DIR (a new build with CC, CXX and OPTIONS..., or the existing one) to link
# with LINKER, builds unit_tests, runs it and checks which linker made it.
# Usage: build DIR LINKER CC CXX OPTIONS...
build() {
  local dir=$1 linker=$2 cc=$3 cxx=$4 used
  local -a link=(-Dc_link_args=-fuse-ld=$linker -Dcpp_link_args=-fuse-ld=$linker)
  shift 4
  if [ -d "$dir" ]; then
    # (not `setup --reconfigure`: meson 1.0.1 shows the new link args but builds with the old)
    "$meson" configure "$dir" "${link[@]}" || return
  else
    CC=$cc CXX=$cxx "$meson" setup "$dir" "$src" -Dunit_tests_only=true "$@" "${link[@]}" || return
  fi
  "$meson" compile -C "$dir" unit_tests && "$dir/tests/unit/unit_tests" --minimal || return
  used=$(linked_by "$dir/tests/unit/unit_tests") || return
  [ "$used" = "$linker" ] || { echo "linked by ld.$used, not ld.$linker"; return 1; }
}

# Every build of one compiler; prints one line per build, "ok" or "FAIL" and its log.
builds_of() {
  local compiler=$1 cc cxx opt linker
  local -a options
  case $compiler in gcc) cc=gcc; cxx=g++ ;; clang) cc=clang; cxx=clang++ ;; esac
  for opt in -O0 -O2 "-O2 -flto"; do
    case $opt in
      -O0) options=(-Dbuildtype=debug) ;;
      -O2) options=(-Dbuildtype=debugoptimized) ;;
      "-O2 -flto") options=(-Dbuildtype=debugoptimized -Db_lto=true) ;;
    esac
    for linker in bfd gold lld; do
      case "$compiler $opt $linker" in "gcc -O2 -flto lld"|"clang -O2 -flto bfd") continue ;; esac
      local dir="$work/$compiler${opt// /}"
      if build "$dir" $linker $cc $cxx "${options[@]}" >"$dir-ld.$linker.log" 2>&1; then
        echo "ok   $compiler $opt ld.$linker"
      else
        echo "FAIL $compiler $opt ld.$linker"; cat "$dir-ld.$linker.log"
      fi
    done
  done
}

builds_of gcc >"$work/gcc.out" 2>&1 &
gcc_builds=$!
builds_of clang >"$work/clang.out" 2>&1 &
clang_builds=$!
wait "$gcc_builds" "$clang_builds"
cat "$work/gcc.out" "$work/clang.out"
passed=$(cat "$work/gcc.out" "$work/clang.out" | grep -c '^ok ')
failed=$(cat "$work/gcc.out" "$work/clang.out" | grep -c '^FAIL ')
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -eq 16 ]
