# bench/boot.ts's initrd hook (mosb initrd build --add ...:/etc/mosctl/initrd.d/50-bench.sh), sourced by
# /init before the boot flow. With mos.bench=N on the kernel command line it times, in this guest:
# node start-up, mosctl start-up, and N alternating runs of `mosctl create-boot-fs` against a shell
# script doing the same mounts (veritysetup open of each hostfs layer, squashfs mount, overlay), each
# torn down again; then it powers off. Layers come from /etc/mosctl/bench-layers: "hex hash_offset root_hash".
_runs=$(mos_arg mos.bench "")
if [ -n "$_runs" ]; then
    _now() { cut -d' ' -f1 /proc/uptime; }
    mos_wait_parts machine-config machine-store machine-scratch
    mos_mount_part machine-config /config ext4
    mos_mount_part machine-store /atomfs-store ext4
    mos_mount_part machine-scratch /scratch-writes ext4
    mkdir -p /run/cryptsetup /newroot /bench/up /bench/work
    export DM_DISABLE_UDEV=1
    for _i in 1 2; do
        _a=$(_now); node -e 0; _b=$(_now); mosctl --version > /dev/null; _c=$(_now)
        echo "BENCH node-start $_a $_b"
        echo "BENCH mosctl-version $_b $_c"
    done
    # A first create-boot-fs checks every blob's sha256 (first boot); later ones find the markers.
    _a=$(_now); mosctl create-boot-fs --root / --capath /manifestCA.pem --dest /newroot --require-verity > /dev/null || mos_fail "bench: create-boot-fs"; _b=$(_now)
    echo "BENCH create-boot-fs-first $_a $_b"
    mosctl umount --root / --dest /newroot > /dev/null || mos_fail "bench: umount"
    _k=0
    while [ $_k -lt "$_runs" ]; do
        _a=$(_now)
        mosctl create-boot-fs --root / --capath /manifestCA.pem --dest /newroot --require-verity > /dev/null || mos_fail "bench: create-boot-fs"
        _b=$(_now)
        echo "BENCH create-boot-fs $_a $_b"
        mosctl umount --root / --dest /newroot > /dev/null || mos_fail "bench: umount"
        _a=$(_now)
        _lower=""; _n=0
        while read -r _hex _off _rh; do
            _n=$((_n + 1))
            veritysetup open "/atomfs-store/mos/blobs/sha256/$_hex" "b$_n" "/atomfs-store/mos/blobs/sha256/$_hex" "$_rh" --hash-offset="$_off" || mos_fail "bench: veritysetup"
            mkdir -p "/bench/l$_n" && mount -t squashfs -o ro "/dev/mapper/b$_n" "/bench/l$_n" || mos_fail "bench: mount"
            _lower="/bench/l$_n${_lower:+:$_lower}"
        done < /etc/mosctl/bench-layers
        mount -t overlay overlay -o "lowerdir=$_lower,upperdir=/bench/up,workdir=/bench/work" /newroot || mos_fail "bench: overlay"
        _b=$(_now)
        echo "BENCH shell $_a $_b"
        umount /newroot; _j=$_n
        while [ $_j -gt 0 ]; do umount "/bench/l$_j"; veritysetup close "b$_j"; _j=$((_j - 1)); done
        rm -rf /bench/up /bench/work; mkdir -p /bench/up /bench/work
        _k=$((_k + 1))
    done
    echo "BENCH done"
    sync; poweroff -f
fi
