# One image for the API (default CMD), the stream worker and the migrations; docker-compose.yml
# picks the command per service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    INVENTORY_WORKER_DATA_DIR=/tmp/worker

# An unprivileged user to run as; the installed code stays owned by root (read-only to it).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
        --shell /usr/sbin/nologin app

WORKDIR /app

COPY pyproject.toml constraints.txt README.md ./
# One COPY per package: a COPY with several directory sources would merge their contents.
COPY common/ ./common/
COPY streams/ ./streams/
COPY api/ ./api/
COPY storage/ ./storage/
COPY schemas/ ./schemas/

RUN pip install --no-cache-dir -c constraints.txt . \
 && rm -rf build ./*.egg-info

# The stock worker's local state (RocksDB). A named volume mounted here takes this owner.
RUN mkdir -p /var/lib/inventory/worker && chown -R 10001:10001 /var/lib/inventory

USER 10001:10001

EXPOSE 8000

ENV INVENTORY_API_HOST=0.0.0.0
CMD ["python", "-m", "api"]
