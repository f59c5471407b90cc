"""``make image-test``: build the container image and run it for real.

Usage::

    .venv/bin/python -m scripts.image_test                  # build and test
    .venv/bin/python -m scripts.image_test --no-build       # test the image as is
    .venv/bin/python -m scripts.image_test --engine podman --image snapclass:dev
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from app import __version__
from scripts.image_test.alone import alone
from scripts.image_test.alone import shared_instance
from scripts.image_test.compose import compose_like
from scripts.image_test.engine import CheckFailed
from scripts.image_test.engine import Engine
from scripts.image_test.engine import check
from scripts.image_test.engine import engine_command
from scripts.image_test.engine import log
from scripts.image_test.engine import passed

MAX_IMAGE_BYTES = 1000 * 1000 * 1000  # the lean image's budget: 1 GB


def image_size(engine: Engine, image: str) -> int:
    return int(engine("image", "inspect", "-f", "{{.Size}}", image).stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.image_test", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--engine", choices=("docker", "podman"))
    parser.add_argument("--image", default=f"snapclass:{__version__}")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--skip-compose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    engine = Engine(engine_command(args.engine))
    figures: dict = {"engine": Path(engine.command[0]).name, "image": args.image}
    started = time.monotonic()
    try:
        if not args.no_build:
            log.info("image-test: building %s with %s", args.image, figures["engine"])
            figures["build (s)"] = round(engine.build(args.image, "random"))
        size = image_size(engine, args.image)
        figures["image size (MB)"] = round(size / 1e6)
        check(size <= MAX_IMAGE_BYTES, f"the image is {size / 1e6:.0f} MB")
        passed(f"image {args.image}: {size / 1e6:.0f} MB (at most 1000)")
        healthcheck = engine(
            "image", "inspect", "-f", "{{json .Config.Healthcheck}}", args.image
        ).stdout
        check("/healthz" in healthcheck, "the image has no HEALTHCHECK")
        passed("the image keeps its HEALTHCHECK (/healthz)")
        alone(engine, args.image, figures, read_only=False)
        alone(engine, args.image, figures, read_only=True)
        shared_instance(engine, args.image)
        if not args.skip_compose:
            compose_like(engine, args.image, figures)
    except (CheckFailed, subprocess.TimeoutExpired) as exc:
        log.error("  FAIL %s", exc)
        return 1
    finally:
        engine.remove_all()
        figures["total (s)"] = round(time.monotonic() - started)
        log.info("%s", json.dumps(figures, indent=2))
    log.info("image-test: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
