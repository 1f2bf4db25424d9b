# vtdui as a container, for docker/compose.yaml (profile "stack"). Build context: the repository root.
#   docker compose -f docker/compose.yaml --profile stack up -d --build
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VTDUI_CONFIG=/etc/vtdui/vtdui.toml \
    VTDUI_STATE_DIR=/var/lib/vtdui \
    VTDUI_HOOKS_DIR=/etc/vtdui/hooks

WORKDIR /opt/vtdui
# What the wheel is built from: the package, and the folders setup.py copies into it (profiles/ and the HAPI
# launcher's sources, read by vtdui from the installed package). The postgres extra brings the PostgreSQL
# driver, for [database] url = "postgresql://..." (several workers).
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE ./
COPY plugin ./plugin
COPY profiles ./profiles
COPY docker/hapi-launcher ./docker/hapi-launcher
COPY hooks ./hooks
RUN pip install '.[postgres]' \
    && useradd --system --uid 10001 --home-dir /var/lib/vtdui vtdui \
    && mkdir -p /var/lib/vtdui /etc/vtdui/hooks \
    && chown vtdui /var/lib/vtdui

USER vtdui
VOLUME ["/var/lib/vtdui"]
# 8765: the webhook receiver HAPI's REST-hook subscriptions call, with /metrics and /health
EXPOSE 8765
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8765/health', timeout=5).status != 200)"]
# SIGTERM: vtdui finishes or parks the work in flight, then exits
STOPSIGNAL SIGTERM
ENTRYPOINT ["vtdui"]
CMD ["run"]
