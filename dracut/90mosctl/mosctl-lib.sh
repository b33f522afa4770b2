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
    [ -d /config/manifest.git ] || mos_commission
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
    mos_site_apply "$_newroot" ""
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
    mos_site_apply "$_newroot" "$_medium"
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

# ---- Site bundles and commissioning ----------------------------------------------------------------
# A site bundle (`mosb bundle create`, signed by a site key the initrd's manifest CA issued) carries a
# site's CA certificates, environment, registries.conf and registry credentials, and optionally the
# provisioning source an uninstalled machine installs itself from. Candidates, in this order:
#   the ESP               /boot/efi/EFI/mosctl/site-bundle.json
#   a site medium         site-bundle.json at the root of an ext4 or ISO 9660 filesystem labelled MOS-SITE
#   the live medium       <medium>/site-bundle.json (live boot only)
# `mosctl bundle inject` verifies them: once a bundle is recorded in /config/site/ (commissioned) that one
# is used and every candidate is ignored and logged. Its files are written into the new root before
# switch_root. An uninstalled machine (no /config/manifest.git) whose bundle names a provisioning source
# installs it (`mosctl install`, the source's device mounted read-only at /run/mosctl/provision) and boots
# it in the same boot; with nothing to install from it waits in a maintenance state:
#   mos.provision.timeout=SECONDS   how long to wait, rescanning every 5 s (default 0: for ever), then fail

MOS_SITE_LABEL=${MOS_SITE_LABEL:-MOS-SITE}
MOS_RESCAN=${MOS_RESCAN:-5}

# The label of the ext4 filesystem on $1 (superblock at 1024: magic 0xEF53 at +56, volume name 16 bytes
# at +120); returns 1 when $1 holds no ext4.
mos_ext4_label() {
    [ "$(dd if="$1" bs=1 skip=1080 count=2 2> /dev/null | od -An -tx1 | tr -d ' \n')" = 53ef ] || return 1
    dd if="$1" bs=1 skip=1144 count=16 2> /dev/null | tr -d '\000'
}

# The ISO 9660 volume label of $1 (see mos_find_label); returns 1 when $1 holds no ISO 9660 volume.
mos_iso_label() {
    [ "$(dd if="$1" bs=1 skip=32769 count=5 2> /dev/null)" = CD001 ] || return 1
    _il=$(dd if="$1" bs=1 skip=32808 count=32 2> /dev/null)
    while [ "${_il% }" != "$_il" ]; do _il=${_il% }; done
    echo "$_il"
}

# Prints "DEV FSTYPE" of the first block device with an ext4 or ISO 9660 filesystem labelled $1.
mos_find_fs() {
    for _s in /sys/class/block/*; do
        _d=/dev/${_s##*/}
        [ -b "$_d" ] || continue
        if _fl=$(mos_ext4_label "$_d") && [ "$_fl" = "$1" ]; then echo "$_d ext4"; return 0; fi
        if _fl=$(mos_iso_label "$_d") && [ "$_fl" = "$1" ]; then echo "$_d iso9660"; return 0; fi
    done
    return 1
}

# The uptime in whole seconds.
mos_uptime() { _up=$(cut -d' ' -f1 /proc/uptime); echo "${_up%.*}"; }

# The first value of "KEY" in the JSON document in file $1 ($2 = KEY): a string (without its quotes,
# none escaped), a number, or null. Prints nothing when absent.
mos_json_get() {
    tr -d '\n' < "$1" | grep -oE "\"$2\"[[:space:]]*:[[:space:]]*(\"[^\"]*\"|-?[0-9]+|null|true|false)" | head -n 1 \
        | sed -E 's/^"[^"]*"[[:space:]]*:[[:space:]]*//; s/^"(.*)"$/\1/'
}

# The object of "KEY" ($2) in the JSON document in file $1, flat (one level, no nested objects), or null.
mos_json_object() {
    tr -d '\n' < "$1" | grep -oE "\"$2\"[[:space:]]*:[[:space:]]*(\\{[^{}]*\\}|null)" | head -n 1 \
        | sed -E 's/^"[^"]*"[[:space:]]*:[[:space:]]*//'
}

# The oci: SOURCE of a provisioning medium mounted at $2: oci:/rel:1.0 and oci:rel:1.0 name
# oci:$2/rel:1.0. Anything else is refused (returns 1).
mos_provision_source() {
    case $1 in
        oci:*) _ps=${1#oci:}; while [ "${_ps#/}" != "$_ps" ]; do _ps=${_ps#/}; done
               [ -n "$_ps" ] || return 1
               echo "oci:$2/$_ps" ;;
        *) return 1 ;;
    esac
}

# Sets MOS_SITE_CANDS (--candidate options) from the ESP and a MOS-SITE medium (mounted read-only at
# /run/mosctl/site-medium until mos_site_release).
mos_site_candidates() {
    MOS_SITE_CANDS=""
    [ -f /boot/efi/EFI/mosctl/site-bundle.json ] && MOS_SITE_CANDS="--candidate /boot/efi/EFI/mosctl/site-bundle.json"
    if ! grep -q " /run/mosctl/site-medium " /proc/mounts && _sm=$(mos_find_fs "$MOS_SITE_LABEL"); then
        mkdir -p /run/mosctl/site-medium
        # shellcheck disable=SC2086
        if mount -t ${_sm#* } -o ro ${_sm%% *} /run/mosctl/site-medium 2> /tmp/mosctl-mount.err; then
            mos_say "site medium ${_sm%% *} ($MOS_SITE_LABEL) mounted at /run/mosctl/site-medium"
        else
            mos_say "cannot mount the site medium ${_sm%% *} ($MOS_SITE_LABEL): $(tail -n 1 /tmp/mosctl-mount.err)"
        fi
    fi
    [ -f /run/mosctl/site-medium/site-bundle.json ] && MOS_SITE_CANDS="$MOS_SITE_CANDS --candidate /run/mosctl/site-medium/site-bundle.json"
    [ -n "$1" ] && [ -f "$1/site-bundle.json" ] && MOS_SITE_CANDS="$MOS_SITE_CANDS --candidate $1/site-bundle.json"
    # Last in precedence: mos.bundle=URL on the command line (${uuid}, ${serial}, ${mac} are expanded by
    # mosctl, which retries with backoff for mos.bundle.wait seconds and says what it waits for). Only an
    # initrd with networking can reach it; mosctl never fetches it once the machine is commissioned.
    _url=$(mos_arg mos.bundle "")
    if [ -n "$_url" ] && [ ! -f /config/site/state.json ]; then
        MOS_SITE_CANDS="$MOS_SITE_CANDS --candidate $_url --network-wait $(mos_arg mos.bundle.wait 30)"
        mos_say "site bundle: will wait up to $(mos_arg mos.bundle.wait 30) s for $_url (mos.bundle=) if nothing before it verifies"
    fi
    return 0
}

mos_site_release() {
    grep -q " /run/mosctl/site-medium " /proc/mounts && umount /run/mosctl/site-medium 2> /dev/null
    return 0
}

# Runs `mosctl bundle inject` with MOS_SITE_CANDS ($1 = the new root to write the site files into, or
# empty: verify and record only). Sets MOS_SITE (the site name, empty when there is no bundle),
# MOS_SITE_VERSION, MOS_PROV_SRC and MOS_PROV_DEV. A refusal fails the boot.
mos_site_inject() {
    _dest=""
    [ -n "$1" ] && _dest="--dest $1"
    # shellcheck disable=SC2086
    if ! $MOS_MOSCTL bundle inject --root / --capath "$MOS_CA" $MOS_SITE_CANDS $_dest --json > /tmp/mosctl-site.json 2> /tmp/mosctl-site.err; then
        _line=$(grep -m 1 '^mosctl: ' /tmp/mosctl-site.err || tail -n 1 /tmp/mosctl-site.err)
        mos_site_release
        mos_fail "site bundle: ${_line#mosctl: }"
    fi
    # Its warnings (JSON lines with --json): "site bundle SOURCE ignored: REASON" becomes "ignored SOURCE: REASON".
    sed -n 's/^{"level":"warn","msg":"\(.*\)"}$/\1/p' /tmp/mosctl-site.err | sed 's/\\"/"/g; s/^site bundle \([^ ]*\) ignored: /ignored \1: /' \
        | while IFS= read -r _l; do case $_l in ignored\ *) mos_say "$_l" ;; *) mos_say "warn: $_l" ;; esac; done
    MOS_SITE=$(mos_json_get /tmp/mosctl-site.json site)
    [ "$MOS_SITE" = null ] && MOS_SITE=""
    MOS_SITE_VERSION=$(mos_json_get /tmp/mosctl-site.json version)
    _prov=$(mos_json_object /tmp/mosctl-site.json provision)
    MOS_PROV_SRC=""; MOS_PROV_DEV=""
    if [ -n "$_prov" ] && [ "$_prov" != null ]; then
        echo "$_prov" > /tmp/mosctl-provision.json
        MOS_PROV_SRC=$(mos_json_get /tmp/mosctl-provision.json source)
        MOS_PROV_DEV=$(mos_json_get /tmp/mosctl-provision.json device)
        [ "$MOS_PROV_DEV" = null ] && MOS_PROV_DEV=""
        [ -n "$MOS_PROV_SRC" ] && [ "$MOS_PROV_SRC" != null ] || mos_fail "site bundle $MOS_SITE version $MOS_SITE_VERSION: cannot read its provisioning source from: $_prov"
    fi
    return 0
}

# Waits (rescanning every MOS_RESCAN s, up to mos.provision.timeout s, 0 = for ever) for what $1 says;
# `$2` is the command that succeeds once it is there. Says what it waits for on the console.
mos_wait_for() {
    _limit=$(mos_arg mos.provision.timeout 0)
    _t0=$(mos_uptime); _n=0
    _bound="for ever (mos.provision.timeout=0)"
    [ "$_limit" -gt 0 ] 2> /dev/null && _bound="giving up after $_limit s (mos.provision.timeout)"
    mos_say "maintenance: waiting for $1; rescanning every $MOS_RESCAN s, $_bound"
    while :; do
        sleep "$MOS_RESCAN"
        _n=$((_n + 1))
        if eval "$2"; then mos_say "maintenance: found after $(( $(mos_uptime) - _t0 )) s"; return 0; fi
        _el=$(( $(mos_uptime) - _t0 ))
        if [ "$_limit" -gt 0 ] 2> /dev/null && [ "$_el" -ge "$_limit" ]; then
            mos_fail "maintenance: still waiting for $1 after $_el s ($_n rescans); gave up (mos.provision.timeout=$_limit)"
        fi
        [ $((_n % 12)) -eq 1 ] && mos_say "maintenance: still waiting for $1 ($_el s, rescan $_n)"
    done
}

# One scan for a bundle naming a provisioning source; true when there is one.
mos_site_scan() {
    mos_site_candidates ""
    if [ -z "$MOS_SITE_CANDS" ] && [ ! -f /config/site/state.json ]; then mos_site_release; return 1; fi
    mos_site_inject ""
    mos_site_release
    [ -n "$MOS_SITE" ] && mos_say "site bundle $MOS_SITE version $MOS_SITE_VERSION: verified and recorded in /config/site"
    [ -n "$MOS_PROV_SRC" ] && return 0
    if [ -n "$MOS_SITE" ]; then
        mos_fail "nothing is installed (no /config/manifest.git) and site bundle $MOS_SITE version $MOS_SITE_VERSION names no provisioning source; install the machine from a medium or record a bundle with --provision"
    fi
    return 1
}

# An uninstalled machine (no /config/manifest.git): the site bundle's provisioning source is installed
# onto the mounted partitions (`mosctl install`), so that the same boot goes on into create-boot-fs.
mos_commission() {
    mos_say "no installed system (no /config/manifest.git): commissioning from a site bundle"
    mos_site_scan || mos_wait_for "a site bundle naming a provisioning source (EFI/mosctl/site-bundle.json on the ESP, or site-bundle.json on a medium labelled $MOS_SITE_LABEL)" mos_site_scan
    _src=$MOS_PROV_SRC
    _from=""
    if [ -n "$MOS_PROV_DEV" ]; then
        _plabel=${MOS_PROV_DEV#LABEL=}
        [ "$_plabel" != "$MOS_PROV_DEV" ] && [ -n "$_plabel" ] || mos_fail "site bundle $MOS_SITE version $MOS_SITE_VERSION: provisioning device $MOS_PROV_DEV: want LABEL=NAME"
        _pd=$(mos_find_fs "$_plabel") \
            || mos_wait_for "the provisioning medium labelled $_plabel (ext4 or ISO 9660) for $MOS_PROV_SRC" "_pd=\$(mos_find_fs '$_plabel')"
        _src=$(mos_provision_source "$MOS_PROV_SRC" /run/mosctl/provision) \
            || mos_fail "site bundle $MOS_SITE version $MOS_SITE_VERSION: provisioning source $MOS_PROV_SRC on $MOS_PROV_DEV: want oci:PATH:TAG (a layout on that medium)"
        mkdir -p /run/mosctl/provision
        # shellcheck disable=SC2086
        mount -t ${_pd#* } -o ro ${_pd%% *} /run/mosctl/provision 2> /tmp/mosctl-mount.err \
            || mos_fail "cannot mount the provisioning medium ${_pd%% *} ($_plabel): $(tail -n 1 /tmp/mosctl-mount.err)"
        _from=" (${_pd%% *}, $MOS_PROV_DEV, mounted read-only at /run/mosctl/provision)"
    fi
    mos_say "commissioning: site $MOS_SITE version $MOS_SITE_VERSION: mosctl install $_src$_from"
    if ! DM_DISABLE_UDEV=1 $MOS_MOSCTL install --root / --capath "$MOS_CA" "$_src" > /tmp/mosctl-install.out 2> /tmp/mosctl-install.err; then
        _line=$(grep -m 1 '^mosctl: ' /tmp/mosctl-install.err || tail -n 1 /tmp/mosctl-install.err)
        umount /run/mosctl/provision 2> /dev/null
        mos_fail "commissioning from $MOS_PROV_SRC: ${_line#mosctl: }"
    fi
    while IFS= read -r _l; do mos_say "$_l"; done < /tmp/mosctl-install.out
    [ -n "$_from" ] && umount /run/mosctl/provision 2> /dev/null
    mos_say "commissioned: continuing this boot into create-boot-fs (no reboot needed)"
}

# After create-boot-fs (or the live root's mount): the recorded bundle, else the first candidate that
# verifies, is written into the new root $1 ($2: the live medium, whose site-bundle.json is a candidate).
mos_site_apply() {
    mos_site_candidates "$2"
    if [ -z "$MOS_SITE_CANDS" ] && [ ! -f /config/site/state.json ]; then mos_site_release; return 0; fi
    mos_site_inject "$1"
    mos_site_release
    [ -n "$MOS_SITE" ] && mos_say "site bundle $MOS_SITE version $MOS_SITE_VERSION: CA anchors, env, registries and auth written into the new root"
    return 0
}
