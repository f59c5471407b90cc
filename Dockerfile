# syntax=docker/dockerfile:1
# Snapclass: docker build -t snapclass:0.1.0 .
#            docker run -p 8000:8000 -e MODEL_WEIGHTS=random snapclass:0.1.0
#
# Build arguments:
#   BACKEND=openvino (default)  the lean image: OpenVINO, no TensorFlow
#   BACKEND=tensorflow          TensorFlow too, serving with it
#                               (tag it e.g. snapclass:0.1.0-tensorflow)
#   TENSORFLOW_PACKAGE=tensorflow-cpu (default); tensorflow[and-cuda] for GPUs
#   FETCH_MODEL=1 (default)  bake the ImageNet weights (`flask fetch-model`)
#                            and the converted OpenVINO model into the image;
#                            needs internet during the build
#   MODEL_WEIGHTS=imagenet   what FETCH_MODEL=1 bakes: imagenet, or random (an
#                            offline build: untrained, converted, no download)
#   FETCH_MODEL=0            bake nothing: the container converts at start (its
#                            MODEL_CACHE_DIR must then be writable, and the
#                            image needs TensorFlow: BACKEND=tensorflow), with
#                            MODEL_WEIGHTS=random or a mounted weights file
#
# Under podman, build with `--format docker`: OCI images have no HEALTHCHECK.
ARG PYTHON_VERSION=3.11
ARG BACKEND=openvino

# --- Python dependencies, in a virtual environment copied as a whole ----------
# What an OpenVINO server needs (requirements-serve.txt) ...
FROM python:${PYTHON_VERSION}-slim AS venv-openvino
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements-serve.txt /tmp/requirements-serve.txt
RUN pip install -r /tmp/requirements-serve.txt

# ... and TensorFlow on top (requirements.txt), to convert or to serve.
FROM venv-openvino AS venv-tensorflow
ARG TENSORFLOW_PACKAGE=tensorflow-cpu
COPY requirements.txt /tmp/requirements.txt
RUN sed -i "s/^tensorflow-cpu==/${TENSORFLOW_PACKAGE}==/" /tmp/requirements.txt \
 && cd /tmp && pip install -r requirements.txt

# --- Weights and the converted model (TensorFlow runs here, at build time) ---
FROM venv-tensorflow AS model
ARG FETCH_MODEL=1
ARG MODEL_WEIGHTS=imagenet
ENV FLASK_APP=wsgi \
    KERAS_HOME=/opt/snapclass/keras \
    MODEL_WEIGHTS=${MODEL_WEIGHTS}
# OpenVINO's converter sends no telemetry from a build.
RUN opt_in_out --opt_out >/dev/null
WORKDIR /src
COPY app ./app
COPY migrations ./migrations
COPY wsgi.py ./
RUN mkdir -p /opt/snapclass/keras/models /opt/snapclass/models \
 && if [ "$FETCH_MODEL" = "1" ]; then \
      if [ "$MODEL_WEIGHTS" = "imagenet" ]; then flask fetch-model; fi \
      && python -c "from pathlib import Path; \
from app.inference import ensure_converted, parse_weights; \
print(ensure_converted(parse_weights('$MODEL_WEIGHTS'), Path('/opt/snapclass/models')))"; \
    fi

# The virtual environment the runtime gets, chosen by BACKEND.
FROM venv-${BACKEND} AS venv

# --- Runtime: the virtual environment, the code, the model; no compilers ------
FROM python:${PYTHON_VERSION}-slim AS runtime
ARG BACKEND=openvino
ARG MODEL_WEIGHTS=imagenet
RUN groupadd --gid 10001 snapclass \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin snapclass
COPY --from=venv /opt/venv /opt/venv
COPY --from=model /opt/snapclass/keras /opt/snapclass/keras
COPY --from=model --chown=10001:10001 /opt/snapclass/models /opt/snapclass/models
WORKDIR /app
# OpenVINO's telemetry: declined in the user's home (/app/intel), read-only,
# so that no process tries to write its consent file there.
RUN HOME=/app /opt/venv/bin/opt_in_out --opt_out >/dev/null
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY wsgi.py gunicorn.conf.py ./
COPY deploy/docker-entrypoint.sh /usr/local/bin/snapclass-entrypoint
# instance/ holds the only files the app writes (metrics and Gunicorn's
# control socket live under /tmp): the SQLite database and the generated
# secret key, unless DATABASE_URL and SECRET_KEY say otherwise.
RUN mkdir -p /app/instance && chown 10001:10001 /app/instance
# MODEL_WEIGHTS: the weights baked in (the build argument) are the default.
# SNAPCLASS_ENV is not set: the image runs alone on SQLite. Compose and
# Kubernetes set SNAPCLASS_ENV=production with SECRET_KEY and DATABASE_URL.
# XDG_RUNTIME_DIR: where Gunicorn puts its control socket (else in $HOME, /app,
# which the user cannot write).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLASK_APP=wsgi \
    INFERENCE_BACKEND=${BACKEND} \
    MODEL_WEIGHTS=${MODEL_WEIGHTS} \
    KERAS_HOME=/opt/snapclass/keras \
    MODEL_CACHE_DIR=/opt/snapclass/models \
    PROMETHEUS_MULTIPROC_DIR=/tmp/snapclass-metrics \
    XDG_RUNTIME_DIR=/tmp \
    HOST=0.0.0.0 \
    PORT=8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["snapclass-entrypoint"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
