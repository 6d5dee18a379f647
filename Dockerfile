# syntax=docker/dockerfile:1
#
# Production image for RacePhoto. One image runs every role (see
# docker-compose.yml): gunicorn (default CMD), the Celery worker and the
# one-shot `manage.py migrate`.
#
#   docker build -t racephoto .
#
# Persistent data lives under /data (named volumes in compose):
#   /data/media    public previews and thumbnails   (MEDIA_ROOT; nginx serves them)
#   /data/private  original photos, never served    (PRIVATE_MEDIA_ROOT)
#   /data/indexes  hnswlib search indexes           (INDEX_DIR)
#   /data/models   model weights                    (MODELS_DIR)

# --- builder: virtualenv + compiled translations -------------------------------
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A C++ toolchain: hnswlib publishes only an sdist, so pip compiles it here.
# It stays in this stage; the runtime image never sees a compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Requirements first so the (large: torch) dependency layer is cached across
# code changes. facenet-pytorch pins an old torch, hence --no-deps: its real
# dependencies are already pinned in requirements.txt.
COPY requirements.txt requirements-nodeps.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -r requirements.txt \
 && pip install --no-deps -r requirements-nodeps.txt

COPY . .
# .mo files are build artefacts (git-ignored): compile them with Babel, which
# is in requirements.txt, so GNU gettext is not needed. A checkout without any
# .po catalog (locale/ may not even exist in git) is fine: nothing to compile.
RUN mkdir -p locale \
 && if find locale -name 'django.po' -print -quit | grep -q .; then \
        pybabel compile -d locale -D django --statistics; \
    else \
        echo "no django.po catalogs under locale/: nothing to compile"; \
    fi

# --- runtime -------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

# Runtime Debian packages: none beyond the base image, on purpose.
# - opencv-python-headless: no libGL / libglib2.0 (those are for the GUI build);
#   its other libraries are vendored in opencv_python_headless.libs.
# - torch vendors libgomp.so.1 in torch/lib; numpy/scipy vendor OpenBLAS and
#   libgfortran; psycopg[binary] vendors libpq; shapely vendors GEOS; dlib-bin
#   and hnswlib need only libstdc++6/libgcc-s1, which the base image has (apt
#   itself links them).
# - The optional NCCL/NVSHMEM network transports (libibverbs, libmpi, ucx...)
#   are not used on a single machine; libcuda.so.1 comes from the host driver
#   when the container runs with a GPU.
# The import check below fails the build if any of this stops being true.

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MODELS_DIR=/data/models \
    INDEX_DIR=/data/indexes \
    MEDIA_ROOT=/data/media \
    PRIVATE_MEDIA_ROOT=/data/private

# Fixed uid/gid so files on volumes keep a stable owner across rebuilds. The
# /data directories are created here, owned by that user: a fresh named volume
# copies them, so the non-root processes can write to it.
RUN groupadd --gid 10001 racephoto \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/racephoto \
        --shell /usr/sbin/nologin racephoto \
 && mkdir -p /data/media /data/private /data/indexes /data/models \
 && chown -R racephoto:racephoto /data

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# The application (with compiled .mo files) stays owned by root: read-only to
# the process that serves it.
COPY --from=builder /src /app

RUN python -c "import torch, torchvision, cv2, hnswlib, dlib, psycopg, numpy, scipy, PIL, shapely, skimage, open_clip, easyocr, facenet_pytorch"

# Static files are collected at build time (served by WhiteNoise). These values
# exist only for this command: DATABASE_URL / REDIS_URL being set keeps the
# settings from starting the embedded PostgreSQL / Valkey, and collectstatic
# connects to neither.
RUN SECRET_KEY=build-only \
    DATABASE_URL=postgres://build@localhost/build \
    REDIS_URL=redis://localhost:6379/0 \
    ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput

USER racephoto
EXPOSE 8000

# curl is not installed: probe with the standard library. Django checks the
# Host header against ALLOWED_HOSTS, so send the first allowed host (a
# ".example.org" or "*" entry is turned into a name it accepts).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; h = (os.environ.get('ALLOWED_HOSTS') or 'localhost').split(',')[0].strip().lstrip('*.') or 'localhost'; u.urlopen(u.Request('http://127.0.0.1:8000/healthz', headers={'Host': h}), timeout=4)"]

# The web server's memory in transparent huge pages: big events' index files are read at
# random by every query (racephoto/hugepages.py). racephoto.hugepages adds
# glibc.malloc.hugetlb=1 to the GLIBC_TUNABLES the operator gives (-e), keeping theirs, and
# leaves it alone when it already sets hugetlb (=0: off). Not an ENV: the worker and
# migrate run other commands, and keep exactly the operator's tunables.
CMD ["python", "-m", "racephoto.hugepages", "gunicorn", "racephoto.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
