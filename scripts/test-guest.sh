#!/usr/bin/env bash
# Builds the tests' bootable Linux guest once per machine and prints where it is:
#   DIR/vmlinuz      Debian's cloud kernel (linux-image-cloud-amd64, from apt)
#   DIR/initrd.img   a busybox initramfs whose /init is the guest (below)
#   DIR/disk.qcow2   an empty 64 MiB ext4 root disk, to be used through an overlay
#
#   bash scripts/test-guest.sh          # builds if needed; prints DIR on its last line
#   bash scripts/test-guest.sh --force  # builds again
#
# The guest boots with direct kernel boot and `console=ttyS0`; under TCG (domain type qemu) it
# reaches its init in seconds (under nested KVM on these machines it hangs: use qemu). Its init
# prints on the serial console, in this order:
#   VIRTFLEET-BOOTS N             boots counted in /boots on its first virtio disk (ext4), if any
#   VIRTFLEET-USER-DATA-BEGIN     then a cloud-init NoCloud seed's user-data (an iso9660 volume
#   ...                           labelled cidata, on a virtio disk or a virtio-scsi CD-ROM), if one is attached
#   VIRTFLEET-USER-DATA-END
#   VIRTFLEET-IP ADDRESS          the address DHCP gave eth0, if it has a (virtio) network interface;
#                                 it then serves VIRTFLEET-HTTP over HTTP on port 80
#   VIRTFLEET-GUEST-READY
#   VIRTFLEET-TICK N              every second from 1, so a restart and a memory-state move differ
# Cached in /var/cache/virtfleet/test-guest/KERNEL-VERSION-rRECIPE (VIRTFLEET_GUEST_CACHE overrides the parent).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CACHE="${VIRTFLEET_GUEST_CACHE:-/var/cache/virtfleet/test-guest}"
# The modules the guest needs (virtio disks and network, a virtio-scsi CD-ROM and ISO 9660 for the
# cloud-init seed); what they depend on is added ahead of them from each module's modinfo `depends=`.
# Built-in ones are skipped.
WANTED_MODULES=(virtio_pci virtio_blk virtio_net virtio_scsi sr_mod isofs)
# Bumped whenever what is built changes, so machines that cached an older guest build it again.
RECIPE=4

force=0
case ${1:-} in
  '') ;;
  --force) force=1 ;;
  *) die "usage: $0 [--force]" ;;
esac
require_root
ensure_apt_packages

package=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[[ $package =~ ^linux-image-([0-9][A-Za-z0-9.+-]*)$ ]] || die "cannot tell which kernel linux-image-cloud-amd64 depends on (got '$package')"
version=${BASH_REMATCH[1]}
out="$CACHE/$version-r$RECIPE"
if ((force == 0)) && [[ -s $out/vmlinuz && -s $out/initrd.img && -s $out/disk.qcow2 ]]; then
  echo "$out"
  exit 0
fi

step "building the test guest ($package) in $out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "$package" >/dev/null 2>"$work/apt.log") || die "apt-get download $package failed: $(cat "$work/apt.log")"
dpkg-deb -x "$work"/"$package"_*.deb "$work/kernel"
kernel=$(find "$work/kernel/boot" -name 'vmlinuz-*' | head -n 1)
[[ -n $kernel ]] || die "$package holds no boot/vmlinuz-*"

root="$work/initramfs"
mkdir -p "$root"/{bin,dev,proc,sys,mnt,seed,lib/modules}
cp /bin/busybox "$root/bin/busybox"
MODULES=()
# add_module NAME: copies NAME's module (after those it depends on) into the initramfs, in load order.
add_module() {
  local m=$1 file dep
  [[ " ${MODULES[*]} " == *" $m "* ]] && return 0
  file=$(find "$work/kernel/lib/modules" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "${m//_/-}.ko" -o -name "${m//_/-}.ko.xz" \) | head -n 1)
  [[ -n $file ]] || return 0 # built into the kernel
  if [[ $file == *.xz ]]; then xz -dc "$file" >"$work/$m.ko"; else cp "$file" "$work/$m.ko"; fi
  for dep in $(grep -a -o 'depends=[A-Za-z0-9_,-]*' "$work/$m.ko" | head -n 1 | cut -d= -f2 | tr ',' ' '); do
    add_module "${dep//-/_}"
  done
  mv "$work/$m.ko" "$root/lib/modules/$m.ko"
  MODULES+=("$m")
}
for m in "${WANTED_MODULES[@]}"; do add_module "$m"; done
mkdir -p "$root/usr/share/udhcpc"
# udhcpc runs this with the lease in its environment ($ip, $mask as a prefix length, $router).
cat >"$root/usr/share/udhcpc/default.script" <<'SCRIPT'
#!/bin/busybox sh
case "$1" in
  bound|renew)
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}"
    echo "VIRTFLEET-IP $ip" >/dev/console
    ;;
esac
SCRIPT
chmod 755 "$root/usr/share/udhcpc/default.script"
cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in ${MODULES[*]}; do [ -f /lib/modules/\$m.ko ] && insmod /lib/modules/\$m.ko 2>/dev/null; done
sleep 1
rooted=0
for d in /dev/vd? /dev/sr?; do
  [ -b "\$d" ] || continue
  if [ "\$rooted" = 0 ] && mount -t ext4 "\$d" /mnt 2>/dev/null; then
    rooted=1
    n=\$(cat /mnt/boots 2>/dev/null || echo 0)
    n=\$((n + 1))
    echo "\$n" > /mnt/boots
    sync
    echo "VIRTFLEET-BOOTS \$n"
  elif mount -t iso9660 -o ro "\$d" /seed 2>/dev/null; then
    if [ -f /seed/user-data ]; then
      echo VIRTFLEET-USER-DATA-BEGIN
      cat /seed/user-data
      echo
      echo VIRTFLEET-USER-DATA-END
    fi
    umount /seed
  fi
done
if [ -e /sys/class/net/eth0 ]; then
  ip link set lo up
  ip link set eth0 up
  udhcpc -i eth0 -n -q -t 10 -T 1 -s /usr/share/udhcpc/default.script >/dev/null 2>&1 || echo VIRTFLEET-NO-DHCP
  mkdir -p /www
  echo VIRTFLEET-HTTP > /www/index.html
  httpd -p 80 -h /www
fi
echo VIRTFLEET-GUEST-READY
i=0
while true; do
  i=\$((i + 1))
  echo "VIRTFLEET-TICK \$i"
  sleep 1
done
EOF
chmod 755 "$root/init"
mkdir -p "$work/out"
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -9) >"$work/out/initrd.img"
cp "$kernel" "$work/out/vmlinuz"
truncate -s 64M "$work/disk.raw"
mkfs.ext4 -F -q "$work/disk.raw"
qemu-img convert -O qcow2 "$work/disk.raw" "$work/out/disk.qcow2"
# Readable by QEMU, which libvirtd runs as libvirt-qemu.
chmod 644 "$work/out"/*
mkdir -p "$CACHE"
rm -rf "$out"
mv "$work/out" "$out"
chmod 755 "$CACHE" "$out"
echo "$out"
