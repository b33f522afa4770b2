#!/bin/bash
# dracut module 90mosctl: boots a machine through mosctl (mos's boot flow, see mosctl-lib.sh).
# Include it with `dracut -a mosctl` (or add_dracutmodules+=" mosctl " in dracut.conf.d), and say in a
# dracut.conf.d file where the pieces are on the build host:
#   mosctl_bundle=/usr/lib/mosctl          # mosctl.mjs, mosctl.cjs(.cache), node_modules/fs-ext (mosb initrd bundle DIR)
#   mosctl_ca=/etc/mosctl/manifestCA.pem   # the manifest CA the initrd trusts (becomes /manifestCA.pem)
# The kernel command line root=soci:name=NAME[,repo=local] selects it.

check() {
    require_binaries node veritysetup || return 1
    # Only when asked for: a machine without mosctl must not get it by accident.
    return 255
}

depends() {
    return 0
}

installkernel() {
    hostonly='' instmods loop squashfs overlay dm_mod dm_verity ext4 crc32c_generic vfat nls_cp437 nls_ascii efivarfs \
        virtio_pci virtio_blk virtio_scsi sd_mod ahci nvme
}

install() {
    local bundle="${mosctl_bundle:-/usr/lib/mosctl}"
    local ca="${mosctl_ca:-/etc/mosctl/manifestCA.pem}"
    [ -f "$bundle/mosctl.mjs" ] || { derror "mosctl: no bundle at $bundle/mosctl.mjs (set mosctl_bundle=)"; return 1; }
    [ -f "$ca" ] || { derror "mosctl: no manifest CA at $ca (set mosctl_ca=)"; return 1; }
    inst_multiple node veritysetup mount umount switch_root cut grep tail sync cp mkdir sleep cat dd od tr sed head
    inst_simple "$bundle/mosctl.mjs" /usr/lib/mosctl/mosctl.mjs
    inst_simple "$bundle/mosctl.cjs" /usr/lib/mosctl/mosctl.cjs
    inst_simple "$bundle/mosctl.cjs.cache" /usr/lib/mosctl/mosctl.cjs.cache
    inst_simple "$bundle/downloader.cjs" /usr/lib/mosctl/downloader.cjs
    inst_simple "$bundle/downloader.cjs.cache" /usr/lib/mosctl/downloader.cjs.cache
    inst_simple "$bundle/node_modules/fs-ext/package.json" /usr/lib/mosctl/node_modules/fs-ext/package.json
    inst_simple "$bundle/node_modules/fs-ext/fs-ext.js" /usr/lib/mosctl/node_modules/fs-ext/fs-ext.js
    inst_simple "$bundle/node_modules/fs-ext/build/Release/fs_ext.node" /usr/lib/mosctl/node_modules/fs-ext/build/Release/fs_ext.node
    inst_simple "$moddir/mosctl-lib.sh" /usr/lib/mosctl/mosctl-lib.sh
    inst_script "$moddir/mosctl-wrapper.sh" /usr/bin/mosctl
    inst_simple "$ca" /manifestCA.pem
    inst_hook cmdline 90 "$moddir/mosctl-cmdline.sh"
    inst_hook mount 90 "$moddir/mosctl-mount.sh"
}
