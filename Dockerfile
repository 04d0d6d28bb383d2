# The image a round runs in (ECS, or a local `docker` work pool): the locked dependencies, your
# models' packages, the project's code, and your model folders with their artifacts, as a
# non-root user in /opt/numerai, the folder model blocks' paths are relative to. No secret is
# ever passed to it; Numerai keys arrive at run time from AWS Secrets Manager (see
# deployments/aws/ecs-job-template.json) or a Prefect block.
#
#   docker build --platform linux/amd64 -t numerai-prefect .
#   BASE_IMAGE: any Debian-like image with python3.11, venv and pip (the default, or the locally
#   made one of deployments/aws/build_image.sh).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# A CA bundle for pip behind a TLS-intercepting proxy: a path, passed only to this stage.
ARG PIP_CERT
ARG REQUIREMENTS=requirements-image.lock
# Where pins built for PyTorch's CPU backend ("+cpu", see deployments/model_packages.py) come from.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY ${REQUIREMENTS} /src/requirements.lock
COPY requirements-models.lock /src/requirements-models.lock
# Exactly the two locks: --no-deps installs nothing they do not list, and the venv's own pip and
# setuptools go afterwards, so the image's package list equals them (a test checks both). PyTorch's
# index is consulted only when the models' lock holds a CPU build of torch.
RUN python3 -m venv /opt/venv \
    && if grep -q '^[^#].*+cpu' /src/requirements-models.lock; then \
        export PIP_EXTRA_INDEX_URL="$TORCH_INDEX_URL"; fi \
    && /opt/venv/bin/pip install --no-deps -r /src/requirements.lock \
        -r /src/requirements-models.lock \
    && /opt/venv/bin/pip uninstall --yes pip setuptools
COPY . /src/
# models/ and artifacts/ (model folders, predictor files) may be absent in a fresh clone; the
# image then has empty ones. The project's bytecode is compiled here: the runtime neither writes
# .pyc files nor may, and each round is a new process (pip has compiled the dependencies').
RUN mkdir -p /src/artifacts /src/models \
    && python3 -m compileall -q --invalidation-mode unchecked-hash /src/flows /src/model \
        /src/blocks /src/deployments

FROM ${BASE_IMAGE} AS runtime
# Shared libraries that common model packages load: libgomp1 for LightGBM's and XGBoost's
# OpenMP. Add yours here (e.g. --build-arg SYSTEM_PACKAGES="libgomp1 libopenblas0").
ARG SYSTEM_PACKAGES=libgomp1
# Debian's security updates are wanted here, so the versions are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends ${SYSTEM_PACKAGES} \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PREFECT_HOME=/tmp/prefect \
    DO_NOT_TRACK=1
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin numerai
WORKDIR /opt/numerai
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/flows ./flows
COPY --from=build /src/model ./model
COPY --from=build /src/blocks ./blocks
COPY --from=build /src/deployments ./deployments
COPY --from=build /src/artifacts ./artifacts
COPY --from=build /src/models ./models
COPY --from=build /src/models.toml /src/prefect.toml /src/requirements.lock \
    /src/requirements-models.lock ./
USER 10001:10001
# ECS workers override the command with the flow-run engine; this is only a smoke check.
CMD ["prefect", "version"]
