# One image for every relayq service: chat workers, browser workers, the gateway.
FROM python:3.11-slim-bookworm

# Chromium from Debian for computer-use workers (Playwright drives it; no browser download)
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-dejavu-core tini \
    && rm -rf /var/lib/apt/lists/*

ENV RELAYQ_CHROMIUM=/usr/bin/chromium \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY llm ./llm
COPY schemas ./schemas
COPY workers ./workers
COPY relayq ./relayq
RUN pip install ".[all]"

RUN useradd --create-home relayq
USER relayq

# tini reaps Chromium's children and forwards SIGTERM, so workers shut down gracefully
ENTRYPOINT ["tini", "--", "relayq"]
CMD ["worker", "--queues", "chat"]
