#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Boots the arm64 guest (build-root.sh's root and kernel) under qemu-system-aarch64, software
# emulation, with PAYLOAD_DIR appended to the root as /pymemtrace: the guest runs
# /pymemtrace/run and powers off. The console goes to stdout as it comes. Exits with run's status;
# 124 when the guest did not say how run ended within TIMEOUT seconds (hung, crashed, no boot).
# Usage: run-guest.sh PAYLOAD_DIR [TIMEOUT]   (as root; builds the root first when not cached)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
payload=$(cd "$1" && pwd)
timeout=${2:-900}
[ -x "$payload/run" ] || { echo "run-guest.sh: $payload/run is missing or not executable" >&2; exit 2; }

image=$("$here/build-root.sh")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/extra/pymemtrace"
cp -a "$payload/." "$work/extra/pymemtrace/"
install -m 755 "$here/guest-init" "$work/extra/pymemtrace-init"
# The kernel unpacks concatenated newc archives in order: the cached root, then the payload.
(cd "$work/extra" && find . -print0 | cpio --null -o -H newc --quiet) >"$work/payload.cpio"
cat "$image/root.cpio" "$work/payload.cpio" >"$work/initrd.cpio"

# -cpu max with pauth-impdef: pointer authentication emulated the cheap way (the architected
# QARMA is several times slower under TCG). panic=-1 and -no-reboot: a panic ends qemu too.
status=0
timeout --foreground "$timeout" qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on -smp 2 \
  -m 2048 -nic none -nographic -no-reboot -kernel "$image/vmlinuz" -initrd "$work/initrd.cpio" \
  -append "console=ttyAMA0 rdinit=/pymemtrace-init panic=-1 loglevel=4" \
  </dev/null | tr -d '\r' | tee "$work/console.log" || status=$?
result=$(sed -n 's/^pymemtrace-guest: exit \([0-9]*\)$/\1/p' "$work/console.log" | tail -1)
if [ -z "$result" ]; then
  echo "run-guest.sh: the guest did not report how its run ended (timeout ${timeout}s or crash; qemu status $status)" >&2
  exit 124
fi
exit "$result"
