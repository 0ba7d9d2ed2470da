#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds, once, a Debian unstable root holding the newest CPythons (3.14, 3.15), their headers, a C
# compiler, <sys/sdt.h> and memray, for the tests that build and run extensions on those versions
# (tests/locations/test_sid_pythons.py) and trace them from the host. Prints the root's path.
#
#   bash tools/sid-root.sh [ROOT]     default ROOT: /var/cache/pymemtrace/sid-root
#
# Idempotent: the root is reused while its inputs (packages, suite, mirror, this script) are the
# same, rebuilt when they change. Safe when interrupted: it is built beside ROOT and renamed into
# place only when complete; one build at a time (a lock). Needs root and debootstrap.
set -euo pipefail

root="${1:-/var/cache/pymemtrace/sid-root}"
suite=sid
packages=python3.14,python3.14-dev,python3.15,python3.15-dev,gcc,libc6-dev,systemtap-sdt-dev,python3-memray

# The mirror this machine's apt already uses (deb822 `URIs:` or one-line `deb` sources), so the
# root comes from the same place as the host's packages; PYMEMTRACE_SID_MIRROR overrides it.
mirror_of_apt_sources() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
    2>/dev/null | awk '
      /^[[:space:]]*URIs:/ { for (i = 2; i <= NF; i++) print $i }
      /^[[:space:]]*deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; break } }' \
    | grep -E '/debian/?$' | head -n 1 || true  # a missing sources file is no error
}
mirror="${PYMEMTRACE_SID_MIRROR:-$(mirror_of_apt_sources)}"
if [ -z "$mirror" ]; then
  echo "sid-root: no Debian mirror in /etc/apt/sources*; set PYMEMTRACE_SID_MIRROR=http://deb.debian.org/debian" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "sid-root: debootstrap and chroot need root; run it as root (sudo bash $0)" >&2
  exit 1
fi
command -v debootstrap >/dev/null || {
  echo "sid-root: debootstrap is missing; install it with tools/install-deps.sh" >&2
  exit 1
}

inputs="$(printf '%s\n' "$suite" "$packages" "$mirror" | cat - "$0" | sha256sum | cut -d' ' -f1)"
stamp=.pymemtrace-sid-root-inputs
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9

if [ "$(cat "$root/$stamp" 2>/dev/null)" = "$inputs" ]; then
  echo "$root"
  exit 0
fi

# A build left by an interrupted run: unmount what debootstrap mounted there, then remove it.
remove_tree() {
  local tree="$1"
  [ -e "$tree" ] || return 0
  findmnt -rn -o TARGET | awk -v t="$tree/" 'index($0 "/", t) == 1' | sort -r \
    | while read -r mount; do umount -l "$mount" || true; done
  rm -rf --one-file-system "$tree"
}
partial="$root.partial"
remove_tree "$partial"

started=$SECONDS
echo "sid-root: debootstrap $suite from $mirror into $root (takes a minute or two)" >&2
# In a process group of its own, so that an interrupted build stops all of it (its wget and
# dpkg too) before the partial tree is removed.
setsid debootstrap --variant=minbase --include="$packages" "$suite" "$partial" "$mirror" \
  >"$root.log" 2>&1 &
builder=$!
stop_and_clean() {
  trap '' INT TERM HUP  # a second signal must not cut the cleaning short
  kill -- -"$builder" 2>/dev/null || true
  wait "$builder" 2>/dev/null || true
  remove_tree "$partial"
}
trap stop_and_clean EXIT
trap 'exit 130' INT TERM HUP
wait "$builder" || {
  echo "sid-root: debootstrap failed; its log: $root.log" >&2
  tail -n 5 "$root.log" >&2
  exit 1
}
echo "$inputs" >"$partial/$stamp"
remove_tree "$root"
mv "$partial" "$root"
trap - EXIT
echo "sid-root: built in $((SECONDS - started)) s" >&2
echo "$root"
