# One image for every Herald service: each Kubernetes Deployment (deploy/k8s) and each
# compose.yaml service picks its command — gunicorn for the API, herald-scheduler, the seven
# worker services (herald-publisher, herald-token-refresher, herald-content, herald-approval,
# herald-image, herald-analytics, herald-webhooks), herald-admin for migrations. Build: `docker build -t herald .`
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The same uv as the Makefile's, the image's own Python, never a download.
RUN pip install --no-cache-dir --disable-pip-version-check "uv==0.13.9"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app
WORKDIR /src
# Third-party dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY services/api/pyproject.toml services/api/
COPY services/scheduler/pyproject.toml services/scheduler/
COPY services/publisher/pyproject.toml services/publisher/
COPY services/token-refresher/pyproject.toml services/token-refresher/
COPY services/content/pyproject.toml services/content/
COPY services/approval/pyproject.toml services/approval/
COPY services/image/pyproject.toml services/image/
COPY services/analytics/pyproject.toml services/analytics/
COPY services/webhooks/pyproject.toml services/webhooks/
COPY services/embedded/pyproject.toml services/embedded/
RUN uv sync --frozen --no-dev --all-packages --no-install-workspace
# Then Herald's own packages, installed as wheels (not editable) so /src is not needed at run time.
COPY libs libs
COPY services services
RUN uv sync --frozen --no-dev --all-packages --no-editable

FROM ${PYTHON_IMAGE}
# The fonts brand cards are drawn in (the README's example brand uses "DejaVu Sans"); without
# them the image service falls back to Pillow's bundled font whatever the brand asks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin herald
COPY --from=build /app /app
# Bytecode is compiled at build time; the root filesystem is read-only in Kubernetes.
ENV PATH=/app/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8000 9191
CMD ["gunicorn", "-c", "python:herald_api.gunicorn_conf", "herald_api.app:get_app()"]
