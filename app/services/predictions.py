"""Classify uploads for a user and store the results, all or nothing."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from dataclasses import field

import sqlalchemy as sa
import sqlalchemy.orm as so

from app import explanations
from app.extensions import db
from app.http.params import MAX_ID
from app.http.params import BadParameter
from app.http.uploads import Upload
from app.inference import Classifier
from app.inference import DecodedImage
from app.inference import InferenceError
from app.inference import NetworkRun
from app.models import Batch
from app.models import Prediction
from app.models import User
from app.services import storage
from app.services.history import delete_expired
from app.services.history import within_retention


@dataclass
class ClassifyOutcome:
    """The stored rows, in upload order, and where the request's time went."""

    rows: list[Prediction]
    timing_ms: dict[str, float] = field(default_factory=dict)
    images_run: int = 0  # this request's images that went through the network
    cache_hits: int = 0
    # Images in the network batch that carried them (other requests' included).
    network_batch_size: int = 0


class ImageRejected(Exception):
    """One upload of a request was refused; the whole request is refused."""

    def __init__(self, filename: str, error: InferenceError) -> None:
        super().__init__(f"{filename}: {error}")
        self.filename = filename
        self.error = error


def classify_and_store(
    classifier: Classifier,
    user: User,
    uploads: list[Upload],
    top_k: int,
    *,
    use_cache: bool = True,
    batch_id: int | None = None,
    shared_cache: bool = False,
    max_stored_bytes: int = 0,
) -> ClassifyOutcome:
    """Classify every upload and store one history row each, in upload order.

    Uploads whose bytes were classified before by the same model (for the same
    user, unless ``shared_cache``) are answered from the database (no decoding,
    no inference); the rest are decoded and run through the network as one
    batch. Nothing is stored unless every upload decodes, the account stays
    within ``max_stored_bytes`` (0: no cap) and the commit succeeds, so a
    success reply always means the rows exist and a failure leaves none.

    :raises storage.StorageQuotaExceeded: the account's storage is full.
    """
    storage.check_room(user, len(uploads), max_stored_bytes)
    args = (classifier, user, uploads, top_k, batch_id, shared_cache)
    try:
        return _classify_and_store(*args, use_cache, max_stored_bytes)
    except CachedThumbnailGone:
        # The row a hit copied from was deleted, with its thumbnail, meanwhile.
        return _classify_and_store(*args, False, max_stored_bytes)


class CachedThumbnailGone(Exception):
    """A cache hit's thumbnail was removed before the new row was stored."""


def _classify_and_store(
    classifier: Classifier,
    user: User,
    uploads: list[Upload],
    top_k: int,
    batch_id: int | None,
    shared_cache: bool,
    use_cache: bool,
    max_stored_bytes: int,
) -> ClassifyOutcome:
    started = time.perf_counter()
    digests = [hashlib.sha256(upload.data).hexdigest() for upload in uploads]
    owner = None if shared_cache else user.id
    hits = (
        cached_results(
            digests, classifier.fingerprint, top_k, owner, need_maps=classifier.explains
        )
        if use_cache
        else {}
    )
    misses = [i for i, digest in enumerate(digests) if digest not in hits]
    network = run_network(classifier, uploads, misses, top_k)

    db_started = time.perf_counter()
    rows = []
    for i, (upload, digest) in enumerate(zip(uploads, digests, strict=True)):
        row = new_row(classifier, user, upload, digest, batch_id)
        if digest in hits:
            copy_cached_result(row, hits[digest], top_k)
        else:
            network.fill(row, i)
        rows.append(row)
    thumbnails = {i: network.decoded[i].thumbnail for i in misses}
    store(user, rows, thumbnails, max_stored_bytes, batch_id)
    finished = time.perf_counter()
    return ClassifyOutcome(
        rows=rows,
        timing_ms={
            **network.timing_ms(),
            "db": (finished - db_started) * 1000.0,
            "total": (finished - started) * 1000.0,
        },
        images_run=len(misses),
        cache_hits=len(uploads) - len(misses),
        network_batch_size=network.run.network_batch_size if network.run else 0,
    )


@dataclass
class NetworkResults:
    """What the network gave the uploads it ran, by their index in the request."""

    decoded: dict[int, DecodedImage]
    run: NetworkRun | None
    predicted: dict[int, list] = field(default_factory=dict)
    maps: dict[int, object] = field(default_factory=dict)

    def fill(self, row: Prediction, index: int) -> None:
        fill_new_result(
            row,
            self.decoded[index],
            self.predicted[index],
            self.run,
            self.maps.get(index),
        )

    def timing_ms(self) -> dict[str, float]:
        run = self.run
        return {
            "decode": sum(image.decode_ms for image in self.decoded.values()),
            "preprocess": run.preprocess_ms if run else 0.0,
            "queue": run.queue_ms if run else 0.0,
            "inference": run.inference_ms if run else 0.0,
        }


def run_network(
    classifier: Classifier, uploads: list[Upload], indexes: list[int], top_k: int
) -> NetworkResults:
    """Decode the uploads at ``indexes`` and classify them as one batch.

    :raises ImageRejected: one of them does not decode (nothing ran).
    """
    decoded = {}
    for i in indexes:
        try:
            decoded[i] = classifier.decode(uploads[i].data)
        except InferenceError as exc:
            raise ImageRejected(uploads[i].filename, exc) from exc
    if not decoded:
        return NetworkResults(decoded, None)
    run = classifier.classify([decoded[i] for i in indexes], top_k)
    return NetworkResults(
        decoded,
        run,
        predicted=dict(zip(indexes, run.predictions, strict=True)),
        maps=dict(zip(indexes, run.maps, strict=True)) if run.maps else {},
    )


def new_row(
    classifier: Classifier,
    user: User,
    upload: Upload,
    digest: str,
    batch_id: int | None,
) -> Prediction:
    """A history row for one upload, before its result is filled in."""
    info = classifier.info
    return Prediction(
        user_id=user.id,
        sha256=digest,
        filename=upload.filename,
        size_bytes=len(upload.data),
        model_name=info.name,
        weights=info.weights,
        backend=info.backend,
        model_fingerprint=classifier.fingerprint or "",
        batch_id=batch_id,
    )


def store(
    user: User,
    rows: list[Prediction],
    thumbnails: dict[int, bytes],
    max_stored_bytes: int = 0,
    batch_id: int | None = None,
) -> None:
    """Commit the rows in one transaction with the user's retention purge.

    ``thumbnails`` are the new JPEGs by row index (the other rows reuse their
    cache source's): each is stored once by content. The account is charged
    (and refused past ``max_stored_bytes``) before anything is kept.

    :raises BadParameter: the batch the rows go into was deleted since the
        request checked it (while the photos uploaded); nothing is stored.
    """
    try:
        delete_expired(user)
        if batch_id is not None and lock_batch(user, batch_id) is None:
            raise batch_gone()
        ids = storage.thumbnail_ids(thumbnails.values())
        for index, data in thumbnails.items():
            rows[index].thumbnail_id = ids[storage.digest(data)]
        # The charge is the first write when there is no new thumbnail: from
        # here on SQLite lets no other writer in, so the check below holds.
        storage.charge(user.id, rows, max_stored_bytes)
        reused = {row.thumbnail_id for row in rows} - set(ids.values())
        if reused - storage.still_stored(reused):
            raise CachedThumbnailGone
        db.session.add_all(rows)
        commit_keeping_state(db.session())
    except sa.exc.IntegrityError:
        db.session.rollback()
        # SQLite does not lock the batch: a delete that committed between the
        # check and the insert shows as the foreign key refusing the rows.
        gone = batch_id is not None and lock_batch(user, batch_id) is None
        db.session.rollback()
        if gone:
            raise batch_gone() from None
        raise
    except Exception:
        db.session.rollback()
        raise


def lock_batch(user: User, batch_id: int) -> int | None:
    """The id of the user's batch, locked until the commit (PostgreSQL), so
    that deleting it waits for the rows going into it; None if it is gone."""
    return db.session.scalar(
        sa.select(Batch.id)
        .where(Batch.id == batch_id, Batch.user_id == user.id)
        .with_for_update()
    )


def batch_gone() -> BadParameter:
    return BadParameter(
        "batch_id",
        "The batch was deleted while the photos were uploading; nothing was "
        "stored. Create a new batch and upload again.",
    )


def commit_keeping_state(session: so.Session) -> None:
    """Commit without expiring what the session holds.

    Every value of the new rows was set here or at the INSERT (ids, Python-side
    defaults), and the reply reads them straight away: expired, each row would
    be loaded again with a SELECT of its own.
    """
    expire = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire


def cached_results(
    digests: list[str],
    model_fingerprint: str | None,
    top_k: int,
    owner_id: int | None = None,
    *,
    need_maps: bool = False,
) -> dict[str, Prediction]:
    """The latest earlier result per digest from the same model (and owner,
    unless ``owner_id`` is None), with enough labels for ``top_k`` (and with
    activation maps when ``need_maps``: rows from before them are classified
    again once)."""
    if not model_fingerprint or not digests:
        return {}
    latest = sa.select(sa.func.max(Prediction.id)).where(
        Prediction.sha256.in_(set(digests)),
        Prediction.model_fingerprint == model_fingerprint,
    )
    if owner_id is not None:
        latest = latest.where(Prediction.user_id == owner_id)
    latest = latest.group_by(Prediction.sha256)
    query = sa.select(Prediction).where(Prediction.id.in_(latest))
    rows = db.session.scalars(query).all()
    return {
        row.sha256: row
        for row in rows
        if len(row.label_scores) >= top_k and (row.explanation or not need_maps)
    }


def copy_cached_result(row: Prediction, source: Prediction, top_k: int) -> None:
    row.mime_type = source.mime_type
    row.width, row.height = source.width, source.height
    row.label_scores = source.label_scores[:top_k]
    row.top_label, row.top_score = source.top_label, source.top_score
    row.thumbnail_id = source.thumbnail_id  # shared, never copied
    row.explanation = explanations.trimmed(source.explanation, top_k)
    row.cached = True
    row.timing_ms = {"decode": 0.0, "preprocess": 0.0, "inference": 0.0}


def fill_new_result(row: Prediction, image, predictions, run, maps=None) -> None:
    best = predictions[0]
    row.mime_type = image.mime_type
    row.width, row.height = image.width, image.height
    row.label_scores = [p.as_dict() for p in predictions]
    row.top_label, row.top_score = best.label, best.score
    row.explanation = explanations.stored(maps)
    row.cached = False
    row.timing_ms = {
        "decode": round(image.decode_ms, 2),
        "preprocess": round(run.preprocess_ms, 2),
        "queue": round(run.queue_ms, 2),
        "inference": round(run.inference_ms, 2),
    }


def owned_prediction(
    user: User, prediction_id: int, *, thumbnail: bool = False
) -> Prediction | None:
    """The user's own prediction (with its thumbnail's bytes when
    ``thumbnail``), or None (also for other users' ids)."""
    if not 0 < prediction_id <= MAX_ID:
        return None
    query = sa.select(Prediction).where(
        Prediction.id == prediction_id,
        Prediction.user_id == user.id,
        *within_retention(user),
    )
    if thumbnail:
        query = query.options(so.joinedload(Prediction.thumbnail))
    return db.session.scalar(query)


def history_query(user: User) -> sa.Select:
    return (
        sa.select(Prediction)
        .where(Prediction.user_id == user.id, *within_retention(user))
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
    )
