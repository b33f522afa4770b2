#!/bin/sh
# Builds the images the example manifests name into one OCI layout, with `mosb image build`:
#   hostfs-1.0  a busybox root filesystem (busybox-static, applet symlinks, /etc/os-release)
#   web-1.0     a container: the same busybox tree serving /www with `httpd -f` (long-running)
#   tools-1.0   fs-only content (no binaries)
#   tools-1.1   the same with a changed and an added file (for partial-update.yaml)
# Usage: manifests/build-images.sh OUT_LAYOUT_DIR   (from a built checkout: npm run build)
# The trees are tiny and the builds reproducible: running it again gives the same digests.
set -eu

out=${1:?usage: manifests/build-images.sh OUT_LAYOUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mosb="$here/../dist/cmd/mosb.js"
busybox=${BUSYBOX:-/bin/busybox}
[ -f "$mosb" ] || { echo "build-images.sh: $mosb missing; run npm run build first" >&2; exit 2; }
[ -x "$busybox" ] || { echo "build-images.sh: $busybox missing; apt-get install busybox-static (or set BUSYBOX)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mosctl-examples.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# busybox_tree DIR VERSION: busybox with `--install -s`-style symlinks and a minimal /etc.
busybox_tree() {
	d=$1
	mkdir -p "$d/bin" "$d/sbin" "$d/usr/bin" "$d/usr/sbin" "$d/etc" "$d/proc" "$d/sys" "$d/dev" "$d/tmp" "$d/run" "$d/root" "$d/var/log"
	chmod 1777 "$d/tmp"
	cp "$busybox" "$d/bin/busybox"
	for applet in $("$busybox" --list-full); do
		[ "$applet" = bin/busybox ] && continue
		[ -e "$d/$applet" ] || ln -s /bin/busybox "$d/$applet"
	done
	cat >"$d/etc/os-release" <<-EOF
		NAME="mosctl example"
		ID=mosctl-example
		VERSION_ID=$2
		PRETTY_NAME="mosctl example $2"
	EOF
	echo 'root:x:0:0:root:/root:/bin/sh' >"$d/etc/passwd"
	echo 'root:x:0:' >"$d/etc/group"
	echo example >"$d/etc/hostname"
}

build() { # build TREE TAG [image build flags...]
	tree=$1 tag=$2
	shift 2
	digest=$(node "$mosb" image build "$@" "$tree" "oci:$out:$tag")
	echo "$tag $digest"
}

busybox_tree "$work/hostfs-1.0" 1.0
build "$work/hostfs-1.0" hostfs-1.0

busybox_tree "$work/web-1.0" 1.0
mkdir -p "$work/web-1.0/www"
echo '<h1>hello from the web example</h1>' >"$work/web-1.0/www/index.html"
build "$work/web-1.0" web-1.0 --entrypoint '["/usr/sbin/httpd","-f","-p","8080","-h","/www"]' --workdir /www

mkdir -p "$work/tools-1.0/bin" "$work/tools-1.0/share"
echo 1.0.0 >"$work/tools-1.0/VERSION"
printf '#!/bin/sh\necho "tools 1.0.0"\n' >"$work/tools-1.0/bin/tools-version"
chmod 755 "$work/tools-1.0/bin/tools-version"
echo 'Read-only data mounted at mnt/atom/tools.' >"$work/tools-1.0/share/README"
build "$work/tools-1.0" tools-1.0

cp -a "$work/tools-1.0" "$work/tools-1.1"
echo 1.1.0 >"$work/tools-1.1/VERSION"
printf '#!/bin/sh\necho "tools 1.1.0"\n' >"$work/tools-1.1/bin/tools-version"
echo 'added in 1.1' >"$work/tools-1.1/share/CHANGES"
build "$work/tools-1.1" tools-1.1
