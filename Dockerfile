# callstream receiver: slim, non-root, one uvicorn worker per container (scale with the orchestrator).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CALLSTREAM_REQUIRE_REDIS_URL=1 \
    CALLSTREAM_CONFIG=/etc/callstream/callstream.toml

WORKDIR /app
RUN useradd --system --uid 10001 --no-create-home --home-dir /app callstream

# The README's install step, from the project's own files.
COPY pyproject.toml README.md ./
COPY receiver ./receiver
COPY statemachine ./statemachine
COPY consumer ./consumer
COPY sinks ./sinks
RUN pip install .

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]

# REDIS_URL must be set (no embedded Redis in a container); mount the configuration at $CALLSTREAM_CONFIG.
ENTRYPOINT ["callstream", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8000", "--graceful-timeout", "20"]
