# syntax=docker/dockerfile:1
# The oomwatch agent image. Build from the repository root:
#   docker build -t ghcr.io/oomwatch/oomwatch:0.1.0 .
# Dependencies are pinned in packaging/requirements.txt; the build makes wheels once
# and installs them offline into a slim runtime with no compiler.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY packaging/requirements.txt packaging/requirements.txt
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r packaging/requirements.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
# journalctl, for the least-privilege journald source (no daemon runs in the image)
RUN apt-get update \
 && apt-get install -y --no-install-recommends systemd \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'oomwatch[kubernetes]' \
 && rm -rf /wheels
# Non-root by default. The Helm chart runs it as root with every capability dropped
# (journald, file) or privileged (kmsg), because the node's log and /proc need it.
RUN useradd --system --uid 10001 --home-dir /var/lib/oomwatch oomwatch
USER 10001
ENV OOMWATCH_STATE_DIR=/var/lib/oomwatch PYTHONDONTWRITEBYTECODE=1
EXPOSE 9753
ENTRYPOINT ["oomwatch"]
CMD ["run"]
