# Vigil worker image. The default command runs a worker; the same image runs the other
# commands of the entry point (`faust -A app train|simulate|demo ...`), see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# An unprivileged user owns only the state and model directories.
RUN groupadd --system --gid 10001 vigil \
 && useradd --system --uid 10001 --gid vigil --home-dir /var/lib/vigil --no-create-home \
        --shell /usr/sbin/nologin vigil

WORKDIR /app
# .dockerignore keeps the virtualenv, local state, caches and trained artifacts out.
COPY . .
# The directories exist in the image and belong to vigil, so a named volume mounted there
# starts out owned by vigil as well.
RUN pip install . \
 && mkdir -p /var/lib/vigil /opt/vigil/models \
 && chown vigil:vigil /var/lib/vigil /opt/vigil/models

# Settings for the container only. Outside a container VIGIL_WEB_HOST stays 127.0.0.1;
# here the web server (/metrics) must listen on all interfaces to be reachable through a
# published port, which docker-compose.yml binds to 127.0.0.1 on the host.
ENV VIGIL_DATA_DIR=/var/lib/vigil \
    VIGIL_MODEL_PATH=/opt/vigil/models/vigil-default.json \
    VIGIL_WEB_HOST=0.0.0.0 \
    VIGIL_WEB_PORT=6066

USER vigil
EXPOSE 6066
CMD ["faust", "-A", "app", "worker", "-l", "info"]
