#!/bin/bash
# Assembles the final image's root in /rootfs from a Debian stage: the stripped binary, the
# shared libraries it links (found with ldd, so the list cannot go stale), bash for the health
# check (whose /dev/tcp needs no curl), the CA bundle, and one non-root account.
#   rootfs.sh BINARY UID NAME
set -euo pipefail
binary=$1 uid=$2 name=$3
export DEBIAN_FRONTEND=noninteractive
missing=()
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
command -v strip >/dev/null || missing+=(binutils)
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mkdir -p /rootfs/usr/local/bin /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/bin
install -m 0755 "/out/$binary" "/rootfs/usr/local/bin/$binary"
strip --strip-unneeded "/rootfs/usr/local/bin/$binary"
chmod 1777 /rootfs/tmp
for file in "/rootfs/usr/local/bin/$binary" /bin/bash; do
  ldd "$file" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
    cp --parents -L "$lib" /rootfs/
  done
done
cp /bin/bash /rootfs/bin/bash
ln -s bash /rootfs/bin/sh
cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/
printf 'root:x:0:0:root:/root:/bin/bash\n%s:x:%s:%s::/nonexistent:/bin/false\n' "$name" "$uid" "$uid" >/rootfs/etc/passwd
printf 'root:x:0:\n%s:x:%s:\n' "$name" "$uid" >/rootfs/etc/group
