# The accessproof engine and the example billing app (one image, two commands).
# The engine listens beyond loopback only with ACCESSPROOF_OTLP_TOKEN and
# ACCESSPROOF_API_TOKEN set in its environment.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/accessproof accessproof \
    && mkdir -p /var/lib/accessproof /etc/accessproof \
    && chown accessproof /var/lib/accessproof

USER accessproof
WORKDIR /var/lib/accessproof
EXPOSE 4317 4318 8080

CMD ["accessproof", "serve", \
     "--config", "/etc/accessproof/accessproof.yaml", \
     "--store", "sqlite:////var/lib/accessproof/accessproof.db", \
     "--otlp-http", "0.0.0.0:4318", \
     "--otlp-grpc", "0.0.0.0:4317", \
     "--http", "0.0.0.0:8080"]
