#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Untraced, a wrapper adds one compare and branch to its call: an alloc+free pair, 4 instructions
# (benchmarks/pair_instructions.c, counted by callgrind: the same count on a busy machine). Was
# 5 (malloc/free) and 9 (realloc/free) when the semaphore was read after the call.
# Usage: untraced_instructions.sh SOURCE_DIR WORK_DIR CC [CC ...]
set -uo pipefail
src=$(cd "$1" && pwd)
work=$2
shift 2
if ! command -v valgrind >/dev/null; then
  echo "valgrind is not installed (apt-get install valgrind)"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
n=100000
status=0
for cc in "$@"; do
  binary="$work/pair_instructions_$(basename "$cc")"
  "$cc" -O2 -std=c99 -Wall -Wextra -Wpedantic -Werror -I"$src/include" \
    "$src/benchmarks/pair_instructions.c" -o "$binary" || exit 1
  for family in c realloc; do
    count() {
      valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" "$binary" "$1" \
        "$family" "$n" 2>&1 | sed -n 's/.*refs: *\([0-9,]*\).*/\1/p' | tr -d ,
    }
    plain=$(count plain)
    wrapped=$(count wrapped)
    added=$(( (wrapped - plain + n / 2) / n ))
    echo "$(basename "$cc") $family: +$added instructions per pair ($plain plain, $wrapped wrapped)"
    if [ -z "$plain" ] || [ -z "$wrapped" ] || [ "$added" -gt 4 ]; then
      echo "  expected +4 at most: one compare and branch a call"
      status=1
    fi
  done
done
exit $status
