#!/bin/sh
# Build the agent image from the unchanged Dockerfile with buildah, on a machine that
# cannot pull from a registry: the Dockerfile's base (python:3.11-slim-bookworm) is
# made here from a Debian bookworm rootfs (debootstrap, with Python and pip), cached in
# $OOMWATCH_IMAGE_CACHE between runs, and imported under that name. Prints the size.
# runc, not crun: crun refuses the hybrid cgroup layout (v1 and v2) of some hosts.
#
#   sudo packaging/build-image.sh [TAG]      # default localhost/oomwatch:test
set -eu
tag=${1:-localhost/oomwatch:test}
cache=${OOMWATCH_IMAGE_CACHE:-/var/cache/oomwatch-test}
base=docker.io/library/python:3.11-slim-bookworm
root=$(cd "$(dirname "$0")/.." && pwd)

if ! podman image exists "$base"; then
    if [ ! -x "$cache/rootfs/usr/bin/python3" ]; then
        mkdir -p "$cache"
        rm -rf "$cache/rootfs.tmp"
        debootstrap --variant=minbase --include=python3,python3-pip \
            bookworm "$cache/rootfs.tmp" http://deb.debian.org/debian
        mv "$cache/rootfs.tmp" "$cache/rootfs"
    fi
    # what the official image gives: python and pip on PATH, pip allowed to install
    rm -f "$cache/rootfs/usr/lib/python3.11/EXTERNALLY-MANAGED"
    ln -sf python3 "$cache/rootfs/usr/bin/python"
    ln -sf pip3 "$cache/rootfs/usr/bin/pip"
    rm -rf "$cache/rootfs/var/lib/apt/lists/"* "$cache/rootfs/var/cache/apt/"*.bin
    # trust what this host trusts (a TLS-inspecting proxy's CA, say), for pip in the build
    cp /etc/ssl/certs/ca-certificates.crt "$cache/rootfs/etc/ssl/certs/ca-certificates.crt"
    tar -C "$cache/rootfs" -c . | podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["python3"]' - "$base" >/dev/null
fi
start=$(date +%s)
buildah bud --runtime "$(command -v runc)" --pull=never --layers -t "$tag" -f "$root/Dockerfile" "$root" >&2
echo "built $tag in $(( $(date +%s) - start )) s; size $(podman image inspect --format '{{.Size}}' "$tag") bytes"
