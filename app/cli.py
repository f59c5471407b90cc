"""``flask`` commands: users, tokens and fetching the model ahead of time."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import Flask
from flask import current_app
from flask.cli import with_appcontext

from .extensions import db
from .forms import USERNAME_PATTERN
from .forms import normalize_username
from .history import purge_all_expired
from .inference import WeightsUnavailable
from .inference import ensure_weights
from .inference import parse_weights
from .models import ApiToken
from .models import User
from .passwords import hash_password


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_user)
    app.cli.add_command(create_token)
    app.cli.add_command(fetch_model)
    app.cli.add_command(purge_history)
    app.cli.add_command(set_admin)


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
    token, plain = ApiToken.issue(_find_user(username), name[:64])
    db.session.add(token)
    db.session.commit()
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
    """Delete predictions older than each user's history retention setting."""
    deleted, users = purge_all_expired()
    click.echo(f"Deleted {deleted} predictions ({users} users with a retention limit).")


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
