"""``flask`` commands: users, tokens and fetching the model ahead of time."""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask
from flask import current_app
from flask.cli import with_appcontext

from app.auth.forms import USERNAME_PATTERN
from app.auth.forms import normalize_username
from app.auth.passwords import hash_password
from app.extensions import db
from app.inference import WeightsUnavailable
from app.inference import compare_precisions
from app.inference import ensure_weights
from app.inference import parse_weights
from app.inference import quantize_model
from app.models import Prediction
from app.models import Thumbnail
from app.models import User
from app.models import utcnow
from app.services.batches import delete_empty_batches
from app.services.history import purge_all_expired
from app.services.storage import drop_all_unused
from app.services.tokens import TooManyTokens
from app.services.tokens import issue_token


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_user)
    app.cli.add_command(create_token)
    app.cli.add_command(fetch_model)
    app.cli.add_command(purge_history)
    app.cli.add_command(set_admin)
    app.cli.add_command(quantize_model_command)
    app.cli.add_command(compare_precision)


def _find_user(username: str) -> User:
    user = db.session.scalar(
        sa.select(User).where(User.username == normalize_username(username))
    )
    if user is None:
        raise click.ClickException(f"No user named {username!r}.")
    return user


@click.command("create-user")
@with_appcontext
@click.argument("username")
@click.password_option(help="Prompted for (hidden) when not given.")
def create_user(username: str, password: str) -> None:
    """Create an account."""
    username = normalize_username(username)
    if not USERNAME_PATTERN.match(username):
        raise click.ClickException(
            "Usernames are 3-32 characters: letters, digits, dot, dash or underscore."
        )
    low = current_app.config["PASSWORD_MIN_LENGTH"]
    high = current_app.config["PASSWORD_MAX_LENGTH"]
    if not low <= len(password) <= high:
        raise click.ClickException(f"Passwords are {low} to {high} characters.")
    if db.session.scalar(sa.select(User.id).where(User.username == username)):
        raise click.ClickException(f"The username {username!r} is taken.")
    db.session.add(User(username=username, password_hash=hash_password(password)))
    db.session.commit()
    click.echo(f"Created user {username}.")


@click.command("create-token")
@with_appcontext
@click.argument("username")
@click.argument("name")
def create_token(username: str, name: str) -> None:
    """Create an API token for USERNAME and print it (shown only once)."""
    limit = current_app.config["MAX_TOKENS_PER_USER"]
    try:
        plain = issue_token(_find_user(username), name[:64], limit)
    except TooManyTokens as exc:
        raise click.ClickException(
            f"{username} has {limit} active tokens (MAX_TOKENS_PER_USER): "
            "revoke one on the account page first."
        ) from exc
    click.echo(plain)


@click.command("fetch-model")
@with_appcontext
def fetch_model() -> None:
    """Download the ImageNet weights and labels into Keras' cache."""
    spec = parse_weights(current_app.config["MODEL_WEIGHTS"])
    if spec.kind != "imagenet":
        spec = parse_weights("imagenet")
    try:
        ensure_weights(spec)
    except WeightsUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("ImageNet weights are in Keras' cache.")


@click.command("purge-history")
@with_appcontext
def purge_history() -> None:
    """Delete predictions older than each user's history retention setting, and
    batches left empty for longer than EMPTY_BATCH_MINUTES."""
    deleted, users = purge_all_expired()
    click.echo(f"Deleted {deleted} predictions ({users} users with a retention limit).")
    cutoff = utcnow() - current_app.config["EMPTY_BATCH_TTL"]
    batches = delete_empty_batches(cutoff)
    db.session.commit()
    click.echo(f"Deleted {batches} empty batches.")
    # Rows removed outside the app (a cascade, by hand) leave theirs behind.
    unused = drop_all_unused()
    db.session.commit()
    click.echo(f"Deleted {unused} thumbnails no prediction uses.")


@click.command("set-admin")
@with_appcontext
@click.argument("username")
@click.option("--revoke", is_flag=True, help="Take the admin flag away instead.")
def set_admin(username: str, revoke: bool) -> None:
    """Let USERNAME open the admin page (or, with --revoke, no longer)."""
    user = _find_user(username)
    user.is_admin = not revoke
    db.session.commit()
    state = "no longer an admin" if revoke else "an admin"
    click.echo(f"{user.username} is {state}.")


PHOTO_SUFFIXES = frozenset((".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"))


def _photos_in(folder: str, limit: int | None = None) -> list[bytes]:
    paths = sorted(
        path
        for path in Path(folder).rglob("*")
        if path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES
    )
    if not paths:
        raise click.ClickException(f"No photos (JPEG, PNG, WebP...) in {folder}.")
    return [path.read_bytes() for path in paths[:limit]]


def _recent_thumbnails(count: int) -> list[bytes]:
    """The thumbnails of the latest ``count`` distinct photos users sent."""
    thumbnails: dict[str, bytes] = {}
    rows = db.session.execute(
        sa.select(Prediction.sha256, Thumbnail.data)
        .join(Prediction.thumbnail)
        .order_by(Prediction.id.desc())
        .limit(count * 4)
    )
    for sha256, thumbnail in rows:
        if thumbnail and sha256 not in thumbnails:
            thumbnails[sha256] = thumbnail
            if len(thumbnails) == count:
                break
    if not thumbnails:
        raise click.ClickException("The history holds no photos to calibrate with.")
    return list(thumbnails.values())


def _model_cache_dir() -> Path:
    from app.inference import default_model_cache_dir

    return Path(current_app.config["MODEL_CACHE_DIR"] or default_model_cache_dir())


@click.command("quantize-model")
@with_appcontext
@click.option(
    "--images",
    "folder",
    type=click.Path(exists=True, file_okay=False),
    help="A folder of calibration photos (NNCF suggests ~300).",
)
@click.option(
    "--from-history",
    "history",
    type=click.IntRange(min=1),
    help="Calibrate with the thumbnails of the latest N distinct uploads.",
)
def quantize_model_command(folder: str | None, history: int | None) -> None:
    """Make the INT8 model that OPENVINO_PRECISION=int8 serves (NNCF)."""
    if (folder is None) == (history is None):
        raise click.UsageError("Give exactly one of --images DIR or --from-history N.")
    photos = _photos_in(folder) if folder else _recent_thumbnails(history)
    spec = parse_weights(current_app.config["MODEL_WEIGHTS"])
    try:
        result = quantize_model(
            spec,
            _model_cache_dir(),
            photos,
            max_pixels=current_app.config["MAX_IMAGE_PIXELS"],
        )
    except (WeightsUnavailable, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    how = "already made" if result.cached else f"made in {result.seconds:.1f} s"
    skipped = (
        f" ({result.skipped} photos could not be decoded)" if result.skipped else ""
    )
    click.echo(
        f"INT8 model {how} from {result.images} photos{skipped}: {result.path}\n"
        "Serve it with OPENVINO_PRECISION=int8; check it first with "
        "'flask compare-precision DIR'."
    )


@click.command("compare-precision")
@with_appcontext
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--limit", type=click.IntRange(min=1), help="At most N photos.")
def compare_precision(folder: str, limit: int | None) -> None:
    """Run each precision against f32 on a folder of photos: top-1 and top-5
    agreement and the largest softmax difference."""
    spec = parse_weights(current_app.config["MODEL_WEIGHTS"])
    try:
        results, skipped = compare_precisions(
            spec,
            _model_cache_dir(),
            _photos_in(folder, limit),
            max_pixels=current_app.config["MAX_IMAGE_PIXELS"],
        )
    except (WeightsUnavailable, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{'precision':<10} {'ran as':<36} {'photos':>6} {'top-1':>7} "
        f"{'top-5':>7} {'max |diff|':>11} {'ms/img':>7}"
    )
    for row in results:
        click.echo(
            f"{row.precision:<10} {row.ran:<36} {row.images:>6} "
            f"{row.top1:>7.1%} {row.top5:>7.1%} {row.max_softmax_diff:>11.5f} "
            f"{row.ms_per_image:>7.1f}"
        )
    if not any(row.precision == "int8" for row in results):
        click.echo("int8: no quantized model yet ('flask quantize-model').")
    if skipped:
        click.echo(f"{skipped} files could not be decoded and were left out.")
    if spec.is_random:
        click.echo(
            "Random weights: agreement says how close the numerics are, not "
            "whether real classifications change."
        )
