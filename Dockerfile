# One image for every role: `momo-gateway serve` (default), `worker`, `migrate`, `simulator`.
#
#   docker build -t momo-gateway .
#   docker run --rm -p 8000:8000 --env-file .env momo-gateway
#
# The gateway runs from its source tree, /srv/momo-gateway, not from an installed wheel, so no
# build backend is involved. As in a checkout, `momo-gateway migrate` finds the Alembic scripts
# at <app package>/../migrations (app/migrate.py; only a wheel carries them as app/migrations),
# so app/ and migrations/ must stay side by side. The virtualenv holds the dependencies only.

ARG PYTHON_VERSION=3.11

# --- builder: the dependencies, in a virtualenv that is copied whole --------------------------
FROM python:${PYTHON_VERSION}-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /build
# Dependencies come from requirements.lock alone (`make lock` writes it from pyproject.toml), so
# this layer is rebuilt only when they change, not on every code change. Every package is pinned
# with the hashes of its files, for amd64 and arm64 alike: a build next year installs the very
# files tested today, and a file that differs from its hash stops the build. --no-deps: the lock
# already lists every dependency, so pip resolves nothing. --only-binary: each pin has a wheel for
# both platforms, and slim has no compiler (a source build would also fetch unhashed build tools).
# No dev extras: tests and linters stay out of the image.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps --only-binary=:all: --requirement requirements.lock

# The console script, written by hand since the package itself is not installed (see above).
RUN printf '#!/bin/sh\nexec /opt/venv/bin/python -m app.cli "$@"\n' > /opt/venv/bin/momo-gateway \
 && chmod 0755 /opt/venv/bin/momo-gateway

# --- runtime -----------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime

LABEL org.opencontainers.image.title="momo-gateway" \
      org.opencontainers.image.description="Payment gateway for MTN Mobile Money and Airtel Money (Uganda)"

# A fixed numeric id, so orchestrators can check runAsNonRoot without resolving names.
RUN groupadd --system --gid 10001 momo \
 && useradd --system --uid 10001 --gid momo --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin momo

COPY --from=builder /opt/venv /opt/venv

WORKDIR /srv/momo-gateway
COPY alembic.ini pyproject.toml README.md ./
COPY migrations ./migrations
COPY app ./app
# Bytecode compiled now, as root: the non-root user cannot write __pycache__ here at run time.
RUN python -m compileall -q app migrations

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/srv/momo-gateway \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
EXPOSE 8000

# Liveness of `serve` on its default port (slim has no curl). The worker, migrate and simulator
# roles replace or disable this in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

# No ENTRYPOINT: `docker run IMAGE momo-gateway worker` and `docker run -it IMAGE sh` both work.
# The command replaces the shell (exec), so SIGTERM reaches uvicorn and arq directly.
CMD ["momo-gateway", "serve"]
