# Rempart as a user deploys it: `rempart serve` on PostgreSQL and Redis (see compose.yaml).
# No secret is baked in: settings come from the environment, secrets from files mounted
# at run time in REMPART_SECRETS_DIR (Docker or Kubernetes secrets).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The same installer and lock as `make` (Makefile: UV_VERSION, requirements.lock).
ARG UV_VERSION=0.13.9
RUN python -m pip install "uv==${UV_VERSION}"

WORKDIR /opt/rempart
COPY requirements.lock pyproject.toml README.md ./
RUN uv pip sync --system --compile-bytecode requirements.lock
COPY src ./src
RUN uv pip install --system --no-deps . && rm -rf /root/.cache

# A user of its own, no shell, no home to write but the data folder (development keys
# are refused in production; the folder keeps the DKIM development key and the
# metrics of several workers).
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin rempart \
    && install -d -o rempart -g rempart -m 0700 /var/lib/rempart
USER rempart
WORKDIR /var/lib/rempart

ENV REMPART_ENV=production \
    REMPART_DATA_DIR=/var/lib/rempart \
    REMPART_SECRETS_DIR=/run/secrets

EXPOSE 8000
# Liveness only: readiness (/health/ready) is for the load balancer or orchestrator.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4).status != 200)"]

CMD ["rempart", "serve", "--host", "0.0.0.0", "--port", "8000"]
