#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the doctest suite with gcc and clang, at -O0, -O2 and -O2 -flto, links it with bfd, gold
# and lld, and runs it: the probe notes must be sane with every toolchain (one site per probe,
# semaphores in .probes, pairs adjacent). LTO joins translation units into one assembly file,
# where the probes' .ifndef guards must keep a single copy. gcc's LTO plugin has no lld
# counterpart, and clang's none for bfd: those two pairs are left out.
# Usage: toolchain_matrix.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$2
unit="$src/tests/unit"
rm -rf "$work" && mkdir -p "$work"

failures=0
runs=0
for compiler in gcc clang; do
  case $compiler in gcc) cc=gcc; cxx=g++ ;; clang) cc=clang; cxx=clang++ ;; esac
  for opt in -O0 -O2 "-O2 -flto"; do
    objects="$work/$compiler${opt// /}"
    mkdir -p "$objects"
    flags=(-I"$src/include" -I"$unit" -Wall -Wextra -Werror $opt -g -fPIC)
    link_flags=($opt)
    for lib in fifty_a fifty_b; do
      $cc -std=c99 "${flags[@]}" -DFIFTY_NAME=$lib -c "$unit/fifty_call_sites.c" -o "$objects/$lib.c.o"
      $cxx -std=c++17 "${flags[@]}" -DFIFTY_NAME=$lib -c "$unit/fifty_call_sites.cpp" -o "$objects/$lib.cpp.o"
    done
    $cc -std=c99 "${flags[@]}" -c "$unit/c_translation_unit.c" -o "$objects/c_translation_unit.o"
    for source in main test_c_heap_wrappers test_allocator test_translation_units test_stapsdt_notes; do
      $cxx -std=c++17 "${flags[@]}" -c "$unit/$source.cpp" -o "$objects/$source.o"
    done
    for linker in bfd gold lld; do
      case "$compiler $opt $linker" in "gcc -O2 -flto lld"|"clang -O2 -flto bfd") continue ;; esac
      runs=$((runs + 1))
      out="$objects/$linker"
      mkdir -p "$out"
      for lib in fifty_a fifty_b; do
        $cxx "${link_flags[@]}" -fuse-ld=$linker -shared "$objects/$lib.c.o" "$objects/$lib.cpp.o" -o "$out/lib$lib.so"
      done
      $cxx "${link_flags[@]}" -fuse-ld=$linker "$objects"/main.o "$objects"/test_*.o "$objects/c_translation_unit.o" \
        -L"$out" -lfifty_a -lfifty_b -Wl,-rpath,"$out" -ldl -o "$out/unit_tests"
      if "$out/unit_tests" --minimal >"$out/log" 2>&1; then
        echo "ok   $compiler $opt ld.$linker"
      else
        echo "FAIL $compiler $opt ld.$linker"; cat "$out/log"; failures=$((failures + 1))
      fi
    done
  done
done
echo "$((runs - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
