#!/bin/sh
# mosctl's boot flow for an initramfs (mos's initrd, reference/mos.md 6.1), shared by the minimal
# initramfs of `mosb initrd build` (/init) and the dracut module 90mosctl. POSIX sh: busybox ash and
# dracut's shell both run it.
#
#   root=soci:name=NAME[,repo=local]     installed machine: partitions by GPT label
#   root=soci:name=TAG,dev=LABEL=L       live medium (mosb mkboot): the ISO 9660 volume labelled L carries an
#                                         OCI layout oci/; its manifest TAG's livecd target, verified against
#                                         the initrd's CA, becomes the root, in RAM (config, atomfs-store and
#                                         scratch-writes on tmpfs); the medium stays at /run/mosctl/medium
#   mos.onfail=halt|poweroff|reboot|shell   what a refused boot does (default halt: the line stays on the console)
#   mos.timeout=SECONDS                   how long to wait for the partitions (default 30)
#   mos.verity=required|optional          required (default): every layer through dm-verity
#   mos.assess=on|off                     on (default): a trial generation's try is counted before it is
#                                         assembled, and a trial out of tries falls back to the good one
#   MODULE.PARAM=VALUE                    module options, as modprobe takes them (i6300esb.heartbeat=300)
#
# A trial boot arms /dev/watchdog when there is one (its driver listed with `mosb initrd build --module`);
# `mosctl assess` in the booted host pets it through the window and disarms it once the generation is good.
#
# Every failure prints one line "mosctl-boot: FAILED: ..." and never switch_roots.

MOS_CA=${MOS_CA:-/manifestCA.pem}
MOS_MOSCTL=${MOS_MOSCTL:-mosctl}

mos_say() { echo "mosctl-boot: $*"; }

# The whole kernel command line's value of key $1 (last one wins), or $2.
mos_arg() {
    _v=$2
    for _a in $(cat /proc/cmdline); do
        case $_a in "$1="*) _v=${_a#"$1="} ;; esac
    done
    echo "$_v"
}

mos_fail() {
    mos_say "FAILED: $*"
    case $(mos_arg mos.onfail halt) in
        poweroff) sync; poweroff -f 2> /dev/null || echo o > /proc/sysrq-trigger ;;
        reboot) sync; reboot -f 2> /dev/null || echo b > /proc/sysrq-trigger ;;
        shell) mos_say "dropping to a shell (mos.onfail=shell)"; exec sh ;;
    esac
    mos_say "halted; fix the machine's store or boot another generation"
    while :; do sleep 3600; done
}

# Parses root=soci:...; sets MOS_NAME, MOS_REPO, MOS_DEV. Returns 1 when root= is not ours.
mos_parse_root() {
    _r=$(mos_arg root "")
    case $_r in soci:*) ;; *) return 1 ;; esac
    MOS_NAME=""; MOS_REPO=local; MOS_DEV=""
    _old_ifs=$IFS; IFS=,
    for _kv in ${_r#soci:}; do
        case $_kv in
            name=*) MOS_NAME=${_kv#name=} ;;
            repo=*) MOS_REPO=${_kv#repo=} ;;
            dev=*) MOS_DEV=${_kv#dev=} ;;
            *) IFS=$_old_ifs; mos_fail "root=$_r: unknown field '$_kv' (want name=, repo=, dev=)" ;;
        esac
    done
    IFS=$_old_ifs
    return 0
}

# Prints /dev/NAME of the partition whose GPT partition name is $1 (from sysfs: no udev, no blkid).
mos_find_part() {
    for _u in /sys/class/block/*/uevent; do
        _pn=""; _dn=""
        while IFS='=' read -r _k _val; do
            case $_k in PARTNAME) _pn=$_val ;; DEVNAME) _dn=$_val ;; esac
        done < "$_u"
        if [ "$_pn" = "$1" ] && [ -n "$_dn" ]; then echo "/dev/$_dn"; return 0; fi
    done
    return 1
}

# Waits up to mos.timeout seconds for every label in $@; fails naming the missing ones.
mos_wait_parts() {
    _limit=$(( $(mos_arg mos.timeout 30) * 10 ))
    _i=0
    while :; do
        _missing=""
        for _l in "$@"; do mos_find_part "$_l" > /dev/null || _missing="$_missing $_l"; done
        [ -z "$_missing" ] && return 0
        [ $_i -ge $_limit ] && mos_fail "no partition named$_missing (GPT partition labels machine-config, machine-store, machine-scratch)"
        sleep 0.1; _i=$((_i + 1))
    done
}

# mount_part LABEL DIR FSTYPE [optional]
mos_mount_part() {
    _dev=$(mos_find_part "$1") || { [ "$4" = optional ] && return 0; mos_fail "no partition named $1"; }
    mkdir -p "$2"
    mount -t "$3" -o rw,noatime "$_dev" "$2" 2> /tmp/mosctl-mount.err \
        || mos_fail "cannot mount $1 ($_dev) at $2: $(tail -n 1 /tmp/mosctl-mount.err)"
}

# The installed-machine boot: partitions, create-boot-fs against the initrd's CA, mounts moved, CA copied.
# $1 = the new root (dracut's $NEWROOT, /newroot in the minimal initramfs). Returns with $1 ready for switch_root.
mos_boot() {
    _newroot=$1
    mos_parse_root || mos_fail "root= is not a soci: root: $(mos_arg root '(none)')"
    [ "$MOS_REPO" = local ] || mos_fail "repo=$MOS_REPO: only repo=local (the machine's own store) boots"
    [ -s "$MOS_CA" ] || mos_fail "the initrd carries no manifest CA at $MOS_CA"
    if [ -n "$MOS_DEV" ]; then mos_live_boot "$_newroot"; return 0; fi
    mos_say "boot ${MOS_NAME:-?}: looking for partitions"
    mos_wait_parts machine-config machine-store machine-scratch
    mos_mount_part machine-config /config ext4
    mos_mount_part machine-store /atomfs-store ext4
    mos_mount_part machine-scratch /scratch-writes ext4
    if mos_find_part esp > /dev/null; then mos_mount_part esp /boot/efi vfat
    elif mos_find_part efi > /dev/null; then mos_mount_part efi /boot/efi vfat
    fi
    mkdir -p /run/cryptsetup "$_newroot"
    _verity=--require-verity
    [ "$(mos_arg mos.verity required)" = optional ] && _verity=""
    _assess=""
    [ "$(mos_arg mos.assess on)" = off ] && _assess=--no-assess
    [ -c /dev/watchdog ] && [ -z "$_assess" ] && _assess="--watchdog /dev/watchdog"
    mos_say "create-boot-fs (manifest CA $MOS_CA)"
    # shellcheck disable=SC2086
    if ! DM_DISABLE_UDEV=1 $MOS_MOSCTL create-boot-fs --root / --capath "$MOS_CA" --dest "$_newroot" $_verity $_assess > /tmp/mosctl-boot.out 2> /tmp/mosctl-boot.err; then
        _line=$(grep -m 1 '^mosctl: ' /tmp/mosctl-boot.err || tail -n 1 /tmp/mosctl-boot.err)
        umount "$_newroot" 2> /dev/null
        mos_fail "${_line#mosctl: }"
    fi
    while IFS= read -r _l; do mos_say "$_l"; done < /tmp/mosctl-boot.out
    grep '^warn: ' /tmp/mosctl-boot.err | while IFS= read -r _l; do mos_say "$_l"; done
    mos_handover "$_newroot" "the assembled hostfs"
    return 0
}

# Hands the state over to the new root $1 ($2 names it in messages): the mounted config, atomfs-store,
# scratch-writes and boot/efi move into it (run/mosctl/booted.json goes with /run), and the CA is copied.
mos_handover() {
    for _d in config atomfs-store scratch-writes boot/efi; do
        grep -q " /$_d " /proc/mounts || continue
        mkdir -p "$1/$_d" 2> /dev/null
        mount --move "/$_d" "$1/$_d" || mos_fail "cannot move /$_d into the new root"
    done
    mkdir -p "$1/factory/secure" && cp "$MOS_CA" "$1/factory/secure/manifestCA.pem" \
        || mos_fail "cannot copy the manifest CA to $1/factory/secure"
    [ -x "$1/sbin/init" ] || [ -L "$1/sbin/init" ] || mos_fail "$2 has no /sbin/init"
}

# Prints /dev/NAME of the first block device whose ISO 9660 volume label is $1: the primary volume
# descriptor (sector 16) starts "\001CD001", its label is the 32 bytes at 32808, space padded. A CD-ROM
# and a hybrid ISO written to a USB disk both carry it at that offset.
mos_find_label() {
    for _s in /sys/class/block/*; do
        _d=/dev/${_s##*/}
        [ -b "$_d" ] || continue
        [ "$(dd if="$_d" bs=1 skip=32769 count=5 2> /dev/null)" = CD001 ] || continue
        _lab=$(dd if="$_d" bs=1 skip=32808 count=32 2> /dev/null)
        while [ "${_lab% }" != "$_lab" ]; do _lab=${_lab% }; done
        [ "$_lab" = "$1" ] && { echo "$_d"; return 0; }
    done
    return 1
}

# The live-medium boot: the medium by label, state on tmpfs, the livecd target of manifest $MOS_NAME
# from the medium's layout (verified against the initrd's CA, every layer through dm-verity) at $1.
mos_live_boot() {
    _newroot=$1
    _label=${MOS_DEV#LABEL=}
    [ "$_label" != "$MOS_DEV" ] && [ -n "$_label" ] || mos_fail "dev=$MOS_DEV: a live medium is named dev=LABEL=NAME"
    [ -n "$MOS_NAME" ] || mos_fail "root=soci:...,dev=$MOS_DEV names no manifest (name=TAG)"
    mos_say "live boot $MOS_NAME: looking for the medium labelled $_label"
    _limit=$(( $(mos_arg mos.timeout 30) * 10 )); _i=0
    until _dev=$(mos_find_label "$_label"); do
        [ $_i -ge $_limit ] && mos_fail "no medium labelled $_label (an ISO 9660 volume; is the CD or USB stick attached?)"
        sleep 0.1; _i=$((_i + 1))
    done
    _medium=/run/mosctl/medium
    mkdir -p "$_medium"
    mount -t iso9660 -o ro "$_dev" "$_medium" 2> /tmp/mosctl-mount.err \
        || mos_fail "cannot mount the medium $_dev: $(tail -n 1 /tmp/mosctl-mount.err)"
    [ -f "$_medium/oci/index.json" ] || mos_fail "the medium $_dev ($_label) carries no OCI layout at /oci"
    mos_say "medium $_dev mounted at $_medium"
    for _d in /config /atomfs-store /scratch-writes; do
        mkdir -p "$_d" && mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$_d" || mos_fail "cannot put tmpfs on $_d"
    done
    mkdir -p /run/cryptsetup "$_newroot"
    _verity=--require-verity
    [ "$(mos_arg mos.verity required)" = optional ] && _verity=""
    # shellcheck disable=SC2086
    if ! DM_DISABLE_UDEV=1 $MOS_MOSCTL mount --root / --capath "$MOS_CA" --target livecd --dest "$_newroot" $_verity "oci:$_medium/oci:$MOS_NAME" > /tmp/mosctl-boot.out 2> /tmp/mosctl-boot.err; then
        _line=$(grep -m 1 '^mosctl: ' /tmp/mosctl-boot.err || tail -n 1 /tmp/mosctl-boot.err)
        mos_fail "${_line#mosctl: }"
    fi
    while IFS= read -r _l; do mos_say "$_l"; done < /tmp/mosctl-boot.out
    mos_handover "$_newroot" "the live root"
}

# Options for module $1 from the kernel command line (MODULE.PARAM=VALUE, dashes as underscores), as
# modprobe would pass them.
mos_module_opts() {
    _mod=$(echo "$1" | tr - _)
    _o=""
    for _a in $(cat /proc/cmdline); do
        case $_a in "$_mod".*=*) _o="$_o ${_a#"$_mod".}" ;; esac
    done
    echo "$_o"
}
