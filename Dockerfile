# The image ECS runs each round in: the locked dependencies, the project's code and the model
# artifacts, as a non-root user. No secret is ever passed to it; Numerai keys arrive at run time
# from AWS Secrets Manager (see deployments/aws/ecs-job-template.json) or a Prefect block.
#
#   docker build --platform linux/amd64 -t numerai-prefect .
#   BASE_IMAGE: any Debian-like image with python3.11, venv and pip (the default, or the locally
#   made one of deployments/aws/build_image.sh).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# A CA bundle for pip behind a TLS-intercepting proxy: a path, passed only to this stage.
ARG PIP_CERT
ARG REQUIREMENTS=requirements-image.lock
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY ${REQUIREMENTS} /src/requirements.lock
# Exactly the lock: --no-deps installs nothing it does not list, and the venv's own pip and
# setuptools go afterwards, so the image's package list equals the lock (a test checks both).
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-deps -r /src/requirements.lock \
    && /opt/venv/bin/pip uninstall --yes pip setuptools
COPY . /src/
# artifacts/ (predictor files) may be absent in a fresh clone; the image then has an empty one.
# The project's bytecode is compiled here: the runtime neither writes .pyc files nor may, and each
# round is a new process (pip has compiled the dependencies' already).
RUN mkdir -p /src/artifacts \
    && python3 -m compileall -q --invalidation-mode unchecked-hash /src/flows /src/model \
        /src/blocks /src/deployments

FROM ${BASE_IMAGE} AS runtime
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
COPY --from=build /src/models.toml /src/prefect.toml /src/requirements.lock ./
USER 10001:10001
# ECS workers override the command with the flow-run engine; this is only a smoke check.
CMD ["prefect", "version"]
