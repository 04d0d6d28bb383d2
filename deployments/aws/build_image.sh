#!/usr/bin/env bash
# Build the round image without a Docker engine: buildah, and a Debian base image made here with
# debootstrap (Docker Hub may be unreachable). The result is the same Dockerfile's image.
#
#   deployments/aws/build_image.sh            # builds localhost/numerai-prefect:dev
#   IMAGE=... BASE_IMAGE=... DEBIAN_MIRROR=... deployments/aws/build_image.sh
#   INSTALL_TOOLS=1 ... also apt-get installs buildah podman runc debootstrap (needs root)
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=${IMAGE:-localhost/numerai-prefect:dev}
BASE_IMAGE=${BASE_IMAGE:-localhost/numerai-python:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORK=${IMAGE_WORKDIR:-$PWD/.numerai/image}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
mkdir -p "$WORK"

if [[ ${INSTALL_TOOLS:-0} == 1 ]] && ! command -v buildah >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah podman runc debootstrap
fi
for tool in buildah podman debootstrap; do
    command -v "$tool" >/dev/null || { echo "missing $tool (INSTALL_TOOLS=1 installs it)" >&2; exit 2; }
done

# podman/buildah in a container: runc, cgroupfs, and raised ulimits.
export CONTAINERS_CONF=${CONTAINERS_CONF:-$WORK/containers.conf}
if [[ ! -f $CONTAINERS_CONF ]]; then
    cat >"$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
fi

if ! buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "Making the base image $BASE_IMAGE with debootstrap"
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$WORK/rootfs" "$DEBIAN_MIRROR"
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
    tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
    printf 'FROM scratch\nADD rootfs.tar /\nCMD ["python3"]\n' >"$WORK/Containerfile.base"
    buildah bud --isolation chroot -f "$WORK/Containerfile.base" -t "$BASE_IMAGE" "$WORK"
fi

mkdir -p artifacts
echo "Building $IMAGE from $BASE_IMAGE"
# The host's CA bundle is mounted for pip's TLS only; it is not copied into any layer.
buildah bud --isolation chroot --layers \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg PIP_CERT=/run/host-ca.crt \
    --volume "$CA_BUNDLE:/run/host-ca.crt:ro" \
    -t "$IMAGE" .
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$IMAGE"
