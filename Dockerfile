# syntax=docker/dockerfile:1
# The oomwatch agent image. Build from the repository root:
#   docker build -t ghcr.io/oomwatch/oomwatch:0.1.0 .
# Dependencies are pinned in packaging/requirements.txt; the build stage makes wheels
# and installs them offline into a venv, which the slim runtime stage copies whole.
# The runtime stage gets no package manager run, no compiler and no wheel files.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
# journalctl (for the least-privilege journald source) and only the libraries it needs
# beyond the base: the systemd package would add ~100 MB the agent never runs.
RUN find / -xdev \( -name '*.so' -o -name '*.so.*' \) -exec readlink -f {} + \
      | sort -u > /tmp/base-libs \
 && apt-get update \
 && apt-get install -y --no-install-recommends systemd \
 && mkdir -p /journalctl/usr/bin \
 && cp /usr/bin/journalctl /journalctl/usr/bin/ \
 && ldd /usr/bin/journalctl | awk '$2 == "=>" && $3 ~ /^\// {print $3}' \
      | while read -r lib; do \
          real=$(readlink -f "$lib"); \
          grep -qxF "$real" /tmp/base-libs && continue; \
          mkdir -p "/journalctl$(dirname "$real")"; \
          cp -L "$lib" "/journalctl$(dirname "$real")/$(basename "$lib")"; \
        done
COPY packaging/requirements.txt packaging/requirements.txt
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r packaging/requirements.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/oomwatch \
 && pip --python /opt/oomwatch/bin/python install --no-cache-dir \
      --no-index --find-links /wheels 'oomwatch[kubernetes]'

FROM python:3.11-slim-bookworm
COPY --from=build /journalctl/ /
COPY --from=build /opt/oomwatch /opt/oomwatch
# Non-root by default. The Helm chart runs it as root with every capability dropped
# (journald, file) or privileged (kmsg), because the node's log and /proc need it.
RUN useradd --system --uid 10001 --home-dir /var/lib/oomwatch oomwatch \
 && journalctl --version >/dev/null
USER 10001
ENV PATH=/opt/oomwatch/bin:$PATH OOMWATCH_STATE_DIR=/var/lib/oomwatch \
    PYTHONDONTWRITEBYTECODE=1
EXPOSE 9753
ENTRYPOINT ["oomwatch"]
CMD ["run"]
