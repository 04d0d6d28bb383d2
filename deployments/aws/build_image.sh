#!/usr/bin/env bash
# Build the round image without a Docker engine: buildah, and a Debian base image made here with
# debootstrap (Docker Hub may be unreachable). The result is the same Dockerfile's image, with
# the model folders of models.toml and their packages (requirements-models.lock).
#
#   deployments/aws/build_image.sh            # builds localhost/numerai-prefect:dev
#   IMAGE=... BASE_IMAGE=... DEBIAN_MIRROR=... deployments/aws/build_image.sh
#   INSTALL_TOOLS=1 ... also apt-get installs buildah podman runc debootstrap (needs root)
#   BASE_ONLY=1 ... makes the base image only
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=${IMAGE:-localhost/numerai-prefect:dev}
BASE_IMAGE=${BASE_IMAGE:-localhost/numerai-python:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORK=${IMAGE_WORKDIR:-$PWD/.numerai/image}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p "$WORK"

if [[ ${INSTALL_TOOLS:-0} == 1 ]] && ! command -v buildah >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah podman runc debootstrap
fi
for tool in buildah podman runc debootstrap; do
    command -v "$tool" >/dev/null || {
        echo "missing $tool: apt-get install -y buildah podman runc debootstrap (or INSTALL_TOOLS=1)" >&2
        exit 2
    }
done
# The models' packages must be locked for their current requirements (make venv does it).
"$PYTHON" -m deployments.model_packages lock --check

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

# The base trusts what this machine trusts: its CA bundle replaces Debian's, so pip (PIP_CERT)
# and apt reach their indexes through a TLS-intercepting proxy, with buildah or a Docker API build
# alike. It holds certificates only, never a key.
if ! buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "Making the base image $BASE_IMAGE with debootstrap"
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$WORK/rootfs" "$DEBIAN_MIRROR"
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
    cp "$CA_BUNDLE" "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
    tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
    printf 'FROM scratch\nADD rootfs.tar /\nCMD ["python3"]\n' >"$WORK/Containerfile.base"
    buildah bud --isolation chroot -f "$WORK/Containerfile.base" -t "$BASE_IMAGE" "$WORK"
    rm -rf "$WORK/rootfs" "$WORK/rootfs.tar"
fi

[[ ${BASE_ONLY:-0} == 1 ]] && exit 0  # only the base (a Docker API build uses it next)

mkdir -p artifacts models
echo "Building $IMAGE from $BASE_IMAGE"
buildah bud --isolation chroot --layers \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    -t "$IMAGE" .
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$IMAGE"
