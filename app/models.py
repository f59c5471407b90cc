"""Database models: users, their API tokens, predictions, their thumbnails and
batches."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_login import UserMixin

from app.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware datetimes on every backend (SQLite forgets the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime; use timezone-aware UTC datetimes")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)  # PostgreSQL answers in the session's zone


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # Stored lower-case, so "Alice" and "alice" are one account.
    username: so.Mapped[str] = so.mapped_column(sa.String(32), unique=True)
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(255))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    # Delete history older than this many days; None keeps it forever.
    history_retention_days: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    # May open /admin; granted with ``flask set-admin USERNAME``.
    is_admin: so.Mapped[bool] = so.mapped_column(
        sa.Boolean, default=False, server_default=sa.false()
    )
    # What the account stores, as app/services/storage.py counts it (its rows
    # and the distinct thumbnails they show); MAX_STORED_BYTES_PER_USER caps it.
    stored_bytes: so.Mapped[int] = so.mapped_column(
        sa.BigInteger, default=0, server_default="0"
    )

    sessions: so.WriteOnlyMapped[UserSession] = so.relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    tokens: so.WriteOnlyMapped[ApiToken] = so.relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    predictions: so.WriteOnlyMapped[Prediction] = so.relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    batches: so.WriteOnlyMapped[Batch] = so.relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class UserSession(db.Model):
    """One signed-in browser. The cookie carries a random secret whose hash is
    the primary key, so deleting the row ends that session for good (a signed
    Flask cookie alone stays valid until it expires)."""

    __tablename__ = "user_sessions"

    id: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    user_agent: so.Mapped[str | None] = so.mapped_column(sa.String(255))

    user: so.Mapped[User] = so.relationship(back_populates="sessions")


TOKEN_PREFIX = "sc_"


def hash_token(token: str) -> str:
    """Tokens carry 256 random bits, so a fast hash is enough to store them."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: so.Mapped[str] = so.mapped_column(sa.String(64))
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    # The first characters, so a person can tell tokens apart on the account page.
    display_prefix: so.Mapped[str] = so.mapped_column(sa.String(16))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    last_used_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    revoked_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)

    user: so.Mapped[User] = so.relationship(back_populates="tokens")

    @classmethod
    def issue(cls, user: User, name: str) -> tuple[ApiToken, str]:
        """Create a token row and return it with the plain token (shown once)."""
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls(
            user=user,
            name=name,
            token_hash=hash_token(plain),
            display_prefix=plain[:10],
        )
        return token, plain

    @property
    def active(self) -> bool:
        return self.revoked_at is None


# Longest label a person may type for something outside ImageNet.
MAX_FEEDBACK_LABEL = 128
MAX_BATCH_NAME = 100


class Batch(db.Model):
    """A named group of predictions uploaded together (a folder, say)."""

    __tablename__ = "batches"
    __table_args__ = (
        sa.Index("ix_batches_user_created", "user_id", "created_at"),
        # An id is never given again, so an upload that names a deleted batch
        # cannot land in somebody else's new one (SQLite reused the highest).
        {"sqlite_autoincrement": True},
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE")
    )
    name: so.Mapped[str] = so.mapped_column(sa.String(MAX_BATCH_NAME))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)

    user: so.Mapped[User] = so.relationship(back_populates="batches")


class Thumbnail(db.Model):
    """A history JPEG, stored once by content: every row of identical uploads
    (a cache hit, or the same photo sent again) points at the same one."""

    __tablename__ = "thumbnails"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # SHA-256 of ``data``; unique, so concurrent inserts of one image meet.
    sha256: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    size_bytes: so.Mapped[int] = so.mapped_column(sa.Integer)
    data: so.Mapped[bytes] = so.mapped_column(sa.LargeBinary)
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)


class Prediction(db.Model):
    __tablename__ = "predictions"
    __table_args__ = (
        # History pages: one user's rows, newest first.
        sa.Index("ix_predictions_user_created", "user_id", "created_at"),
        # Result cache: the same bytes through the same model.
        sa.Index("ix_predictions_cache", "sha256", "model_fingerprint"),
        # Admin agreement figures and the history's review filter.
        sa.Index("ix_predictions_feedback", "feedback_correct"),
        # Whether a thumbnail is still used (by anyone, or by this user).
        sa.Index("ix_predictions_thumbnail", "thumbnail_id", "user_id"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE")
    )
    sha256: so.Mapped[str] = so.mapped_column(sa.String(64))
    filename: so.Mapped[str] = so.mapped_column(sa.String(255))
    mime_type: so.Mapped[str] = so.mapped_column(sa.String(32))
    size_bytes: so.Mapped[int] = so.mapped_column(sa.Integer)
    width: so.Mapped[int] = so.mapped_column(sa.Integer)
    height: so.Mapped[int] = so.mapped_column(sa.Integer)
    # The stored labels, best first: [{class_id, wnid, label, score}] (the
    # column keeps its first name, top_k).
    label_scores: so.Mapped[list] = so.mapped_column("top_k", sa.JSON)
    top_label: so.Mapped[str] = so.mapped_column(sa.String(128))
    top_score: so.Mapped[float] = so.mapped_column(sa.Float)
    model_name: so.Mapped[str] = so.mapped_column(sa.String(64))
    weights: so.Mapped[str] = so.mapped_column(sa.String(255))
    backend: so.Mapped[str] = so.mapped_column(sa.String(32))
    # Weights + runtime that produced the scores; the result cache's key.
    model_fingerprint: so.Mapped[str] = so.mapped_column(
        sa.String(128), server_default=""
    )
    # True when the scores were copied from an earlier identical upload.
    cached: so.Mapped[bool] = so.mapped_column(sa.Boolean, server_default=sa.false())
    timing_ms: so.Mapped[dict] = so.mapped_column(sa.JSON)
    thumbnail_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("thumbnails.id"))
    # Set while the owner shares this result through a public link.
    share_token: so.Mapped[str | None] = so.mapped_column(
        sa.String(64), index=True, unique=True
    )
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    # The person's verdict: True (right), False (corrected to feedback_label),
    # None (not reviewed). See app/services/feedback.py.
    feedback_correct: so.Mapped[bool | None] = so.mapped_column(sa.Boolean)
    feedback_label: so.Mapped[str | None] = so.mapped_column(
        sa.String(MAX_FEEDBACK_LABEL)
    )
    feedback_at: so.Mapped[datetime | None] = so.mapped_column(UTCDateTime)
    # The upload this row came with, when it was sent as a batch; deleting the
    # batch deletes its rows.
    batch_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("batches.id", ondelete="CASCADE"), index=True
    )
    # Class activation maps of the label_scores, in their order, each 7x7 and
    # scaled to 0..1: {"size": [7, 7], "maps": [[[...]]]} (app/explanations.py).
    # None for rows from before the maps, or from a runtime without them.
    explanation: so.Mapped[dict | None] = so.mapped_column(sa.JSON)

    user: so.Mapped[User] = so.relationship(back_populates="predictions")
    # Loaded only when asked for (``so.joinedload``): a history list never
    # reads the image bytes, and an accidental lazy load raises.
    thumbnail: so.Mapped[Thumbnail] = so.relationship(lazy="raise")

    @property
    def random_weights(self) -> bool:
        return self.weights == "random"

    @property
    def precision(self) -> str:
        """What the network computed in (f32, bf16, int8), read from the
        runtime variant in the fingerprint ("<weights>/openvino-bf16")."""
        variant = (self.model_fingerprint or "").rpartition("/")[2]
        if not variant.startswith("openvino-"):
            return "f32"  # TensorFlow, and rows from before precisions existed
        return variant.removeprefix("openvino-").partition("-")[0]
