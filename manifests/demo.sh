#!/usr/bin/env bash
# The main job end to end on an embedded default (an OCI layout, no server): build the example images,
# make a signing keyset, publish a signed release to an oci: layout (a "live CD"), install it into a
# scratch root, assemble hostfs, boot (fs-only target mounted, container running under LXC), update to a
# second release, roll back, and print status. Needs root (mounts, LXC); run `bash .ci/setup` first.
# DEMO_KEEP=1 leaves the work dir and the running system in place for a look around.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mosctl() { node "$top/dist/cmd/mosctl.js" "$@"; }
mosb() { node "$top/dist/cmd/mosb.js" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "demo: run as root (it mounts filesystems and starts an LXC container)" >&2; exit 2; }
[ -f "$top/dist/cmd/mosctl.js" ] || (cd "$top" && npm run --silent build)

work=$(mktemp -d /var/tmp/mosctl-demo.XXXXXX)
chmod 755 "$work"
root="$work/root"
export XDG_DATA_HOME="$work/keys"
# Starting the container adds its uid range to /etc/subuid and /etc/subgid: put them back afterwards.
for f in subuid subgid; do [ -f "/etc/$f" ] && cp -p "/etc/$f" "$work/$f.saved"; done
cleanup() {
  [ "${DEMO_KEEP:-}" = 1 ] && { echo "demo: kept $work (root $root)"; return; }
  for f in subuid subgid; do if [ -f "$work/$f.saved" ]; then cp -p "$work/$f.saved" "/etc/$f"; else rm -f "/etc/$f"; fi; done
  mosctl --root "$root" deactivate -t web >/dev/null 2>&1 || true
  mosctl --root "$root" deactivate -t tools >/dev/null 2>&1 || true
  mosctl --root "$root" umount --dest "$work/sysroot" >/dev/null 2>&1 || true
  if grep -q " $work/" /proc/self/mountinfo; then
    echo "demo: something is still mounted under $work; left in place" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

step "build the example images (mosb image build: squashfs + dm-verity data)"
bash "$top/manifests/build-images.sh" "$work/build/oci"

step "create a signing keyset (manifest CA + project key, mos layout)"
mosb keyset add demo
mosb project add demo:release

step "publish release 1.0 to the layout oci:$work/release (signed install manifest + images)"
cd "$work"
mosb manifest publish --repo "oci:$work/release" --name machine/install:1.0 --project demo:release "$top/manifests/demo.yaml"

step "install it into $root (the manifest CA is what the initrd would ship)"
mkdir -p "$root/factory/secure"
cp "$XDG_DATA_HOME/machine/trust/keys/demo/manifest-ca/cert.pem" "$root/factory/secure/manifestCA.pem"
mosctl --root "$root" install "oci:$work/release:1.0"

step "assemble hostfs read-only, as the initrd does before switch_root"
mosctl --root "$root" create-boot-fs --readonly --dest "$work/sysroot"
cat "$work/sysroot/etc/os-release"
mosctl --root "$root" umount --dest "$work/sysroot"

step "boot: storage volumes, then every target (tools mounted, web under LXC)"
mosctl --root "$root" boot
cat "$root/mnt/atom/tools/VERSION"

step "publish release 1.1 (a partial update of tools) and update to it"
mosb manifest publish --repo "oci:$work/release" --name machine/install:1.1 --project demo:release "$top/manifests/partial-update.yaml"
mosctl --root "$root" update "oci:$work/release:1.1"
mosctl --root "$root" activate -t tools
cat "$root/mnt/atom/tools/VERSION"

step "roll back to generation 1"
mosctl --root "$root" rollback --to 1
mosctl --root "$root" activate -t tools
cat "$root/mnt/atom/tools/VERSION"

step "history and status"
mosctl --root "$root" history
mosctl --root "$root" status
mosctl --root "$root" fsck
