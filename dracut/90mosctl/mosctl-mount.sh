#!/bin/sh
# dracut mount hook: assemble hostfs at $NEWROOT with mosctl create-boot-fs; dracut then switch_roots.
[ "$root" = soci ] || return 0
modprobe -a loop squashfs overlay dm_mod dm_verity ext4 2> /dev/null
. /usr/lib/mosctl/mosctl-lib.sh
mos_boot "$NEWROOT"
