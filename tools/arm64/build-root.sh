#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds, once, what the arm64 guest boots: a Debian bookworm arm64 root (bpftrace, python3 and
# its headers, pytest) as one uncompressed initramfs, and Debian's own arm64 kernel beside it.
# Cached under /var/cache/pymemtrace/arm64-<hash of this file>/ (a changed recipe is a new
# entry); built in a scratch directory and renamed into place only when complete, so an
# interrupted build leaves nothing that looks finished. Prints the cache directory.
#
# Fast because nothing slow runs under qemu-user: the kernel package is not installed (its
# update-initramfs step took 20 of 20 minutes by hand); its vmlinuz is unpacked with dpkg-deb -x,
# and no module is needed because the root is the initramfs (no disk, no virtio_blk).
# Needs root: debootstrap, chroot, binfmt_misc. Usage: build-root.sh
set -euo pipefail

mirror=${PYMEMTRACE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=bpftrace,python3,python3-dev,python3-pytest
key=$( (cat "$0"; echo "$mirror") | sha256sum | cut -c1-16)
cache=/var/cache/pymemtrace
final=$cache/arm64-$key

if [ -f "$final/complete" ]; then
  echo "$final"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "build-root.sh: building the arm64 root needs root (debootstrap, chroot); run as root" >&2
  exit 1
fi
for tool in debootstrap qemu-system-aarch64 dpkg-deb cpio; do
  command -v "$tool" >/dev/null || {
    echo "build-root.sh: $tool is missing; tools/install-deps.sh installs it" >&2; exit 1; }
done
mkdir -p "$cache"
exec 9>"$cache/arm64.lock"
flock 9   # one build at a time; a second caller then finds it done
if [ -f "$final/complete" ]; then
  echo "$final"
  exit 0
fi

# The second stage runs arm64 programs: the kernel hands them to qemu-user through binfmt_misc
# (host-wide; registered only when nobody has, as qemu-user-static's own file says).
binfmt=/proc/sys/fs/binfmt_misc
[ -e $binfmt/register ] || mount -t binfmt_misc binfmt_misc $binfmt 2>/dev/null || true
if [ ! -e $binfmt/qemu-aarch64 ] \
   && ! cat /usr/lib/binfmt.d/qemu-aarch64.conf >$binfmt/register 2>/dev/null; then
  echo "build-root.sh: cannot register qemu-aarch64 in binfmt_misc ($binfmt), which running" \
       "arm64 programs in the root needs: install qemu-user-static, and run where binfmt_misc" \
       "can be mounted (not in an unprivileged container)" >&2
  exit 1
fi

# What a build killed outright (no EXIT trap) left; none is running, we hold the lock.
rm -rf "$cache"/arm64-building.*
scratch=$(mktemp -d "$cache/arm64-building.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
root=$scratch/root
started=$SECONDS
echo "build-root.sh: debootstrap first stage ($packages)" >&2
debootstrap --arch=arm64 --foreign --variant=minbase --include="$packages" \
  bookworm "$root" "$mirror" >"$scratch/debootstrap.log" 2>&1 \
  || { tail -20 "$scratch/debootstrap.log" >&2; exit 1; }

# The kernel: the package linux-image-arm64 depends on, read from the index the first stage
# fetched, downloaded and unpacked (not installed).
index=$(ls "$root"/var/lib/apt/lists/*_main_binary-arm64_Packages)
kernel_deb=$(python3 - "$index" <<'PY'
import re, sys
stanzas = {}
for stanza in open(sys.argv[1]).read().split("\n\n"):
    fields = dict(re.findall(r"^([\w-]+): (.*)$", stanza, re.M))
    if "Package" in fields:
        stanzas[fields["Package"]] = fields
image = stanzas["linux-image-arm64"]["Depends"].split()[0]
print(stanzas[image]["Filename"])
PY
)
echo "build-root.sh: kernel $kernel_deb" >&2
curl -fsS -o "$scratch/kernel.deb" "$mirror/$kernel_deb"
dpkg-deb -x "$scratch/kernel.deb" "$scratch/kernel"
cp "$scratch"/kernel/boot/vmlinuz-* "$scratch/vmlinuz"
echo "${kernel_deb##*/}" >"$scratch/kernel-package"

echo "build-root.sh: debootstrap second stage, under qemu-user" >&2
chroot "$root" /debootstrap/debootstrap --second-stage >"$scratch/second-stage.log" 2>&1 \
  || { tail -20 "$scratch/second-stage.log" >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale
(cd "$root" && find . -xdev -print0 | cpio --null -o -H newc --quiet) >"$scratch/root.cpio"
rm -rf "$root" "$scratch/kernel" "$scratch/kernel.deb"

echo "build-root.sh: built in $((SECONDS - started)) s" >&2
chmod 755 "$scratch"
touch "$scratch/complete"
rm -rf "$final"  # a partial entry can only be one a crash left
mv "$scratch" "$final"  # the one step that makes it appear, complete
trap - EXIT
# Entries of other recipes are never used again.
find "$cache" -maxdepth 1 -name 'arm64-*' ! -name "arm64-$key" ! -name 'arm64-building.*' \
  -exec rm -rf {} +
echo "$final"
