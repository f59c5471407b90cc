# syntax=docker/dockerfile:1
# Snapclass: docker build -t snapclass:0.1.0 .
#
# Build arguments:
#   FETCH_MODEL=1 (default)  bake the ImageNet weights (`flask fetch-model`)
#                            and the converted OpenVINO model into the image;
#                            needs internet during the build
#   MODEL_WEIGHTS=imagenet   what FETCH_MODEL=1 bakes: imagenet, or random (an
#                            offline build: untrained, converted, no download)
#   FETCH_MODEL=0            bake nothing: the container converts at start (its
#                            MODEL_CACHE_DIR must then be writable), with
#                            MODEL_WEIGHTS=random or a mounted weights file
ARG PYTHON_VERSION=3.11

# --- Python dependencies, in a virtual environment copied as a whole ----------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

# --- Weights and the converted model (TensorFlow runs here, at build time) ---
FROM build AS model
ARG FETCH_MODEL=1
ARG MODEL_WEIGHTS=imagenet
ENV FLASK_APP=wsgi \
    KERAS_HOME=/opt/snapclass/keras \
    MODEL_WEIGHTS=${MODEL_WEIGHTS}
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

# --- Runtime: the virtual environment, the code, the model; no compilers ------
FROM python:${PYTHON_VERSION}-slim AS runtime
RUN useradd --system --uid 10001 --user-group --home-dir /app \
        --shell /usr/sbin/nologin snapclass
COPY --from=build /opt/venv /opt/venv
COPY --from=model /opt/snapclass/keras /opt/snapclass/keras
COPY --from=model --chown=10001:10001 /opt/snapclass/models /opt/snapclass/models
WORKDIR /app
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY wsgi.py gunicorn.conf.py ./
# instance/ holds the only files the app writes (metrics live under /tmp).
RUN mkdir -p /app/instance && chown 10001:10001 /app/instance
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLASK_APP=wsgi \
    SNAPCLASS_ENV=production \
    KERAS_HOME=/opt/snapclass/keras \
    MODEL_CACHE_DIR=/opt/snapclass/models \
    PROMETHEUS_MULTIPROC_DIR=/tmp/snapclass-metrics \
    HOST=0.0.0.0 \
    PORT=8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
