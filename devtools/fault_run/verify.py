"""What clients were told against what the database holds, and the fork check."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from devtools.fault_run.injectors import Fault
from devtools.fault_run.load import IMAGES_PER_REQUEST
from devtools.fault_run.load import Outcome
from devtools.server import LiveServer
from devtools.server import connections_to_port
from devtools.server import tcp_socket_inodes

TEMPORARY_CODES = {"database_unavailable", "overloaded", "model_unavailable"}


def verify(
    server: LiveServer, fault: Fault, outcomes: list[Outcome], problems: list[str]
) -> dict:
    """Compare what clients were told with what the database holds.

    Problems are prefixed by kind: ``rows:`` (an acknowledged row missing, a
    half-stored batch, a row left by a refused request) and ``answers:`` (a
    failure that is not a 503 with a JSON body and Retry-After).
    """
    scenario = fault.name
    answers = Counter()
    by_tag = {o.tag: o for o in outcomes}
    for outcome in outcomes:
        if outcome.status == 200:
            answers["200"] += 1
        elif outcome.status == 0:
            kind = (outcome.error or "?").split(":", 1)[0]
            answers[f"no answer ({kind})"] += 1
        else:
            answers[f"{outcome.status} {outcome.code}"] += 1
        check_answer(outcome, problems, killed=not fault.hold)
    answers["failed"] = sum(1 for o in outcomes if o.status != 200)

    engine = server.engine()
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT id, filename, thumbnail FROM predictions "
                    "WHERE filename LIKE :prefix"
                ),
                {"prefix": f"{scenario}-c%"},
            ).all()
    finally:
        engine.dispose()
    stored = {row.id: row for row in rows}
    rows_per_tag = Counter(row.filename.rsplit("-i", 1)[0] for row in rows)

    ok_ids = [i for o in outcomes if o.status == 200 for i in o.ids]
    missing = [i for i in ok_ids if i not in stored]
    no_thumbnail = [
        i
        for i in ok_ids
        if i in stored and not bytes(stored[i].thumbnail or b"").startswith(b"\xff\xd8")
    ]
    partial = {t: n for t, n in rows_per_tag.items() if n != IMAGES_PER_REQUEST}
    failed_but_stored = {
        t: by_tag[t].status
        for t in rows_per_tag
        if t in by_tag and by_tag[t].status not in (0, 200)
    }
    unanswered_but_stored = [
        t for t in rows_per_tag if t in by_tag and by_tag[t].status == 0
    ]
    unknown = [t for t in rows_per_tag if t not in by_tag]
    answered_ok_tags = {o.tag for o in outcomes if o.status == 200}
    if missing:
        problems.append(f"rows: {len(missing)} ids answered 200 are not stored")
    if no_thumbnail:
        problems.append(f"rows: {len(no_thumbnail)} rows answered 200 lack a thumbnail")
    if partial:
        problems.append(f"rows: half-stored batches: {partial}")
    # A 500 is already an answers problem; its stored rows are listed there.
    for tag, status in failed_but_stored.items():
        kind = "answers" if status == 500 else "rows"
        problems.append(f"{kind}: {tag} answered {status} but its rows are stored")
    if unknown:
        problems.append(f"rows: rows of requests never sent: {unknown}")
    return {
        "requests": len(outcomes),
        "answers": dict(answers),
        "no_answer_samples": sorted(
            {f"{o.started:.1f}s {o.error}" for o in outcomes if o.status == 0}
        )[:5],
        "ids_answered_200": len(ok_ids),
        "ids_found_with_thumbnail": len(ok_ids) - len(missing) - len(no_thumbnail),
        "rows_stored": len(rows),
        "rows_expected_from_200s": len(answered_ok_tags) * IMAGES_PER_REQUEST,
        # A worker killed after its commit but before its reply: complete rows
        # whose client saw a reset connection (allowed, reported).
        "requests_stored_without_answer": len(unanswered_but_stored),
        "half_stored_batches": len(partial),
    }


def check_answer(outcome: Outcome, problems: list[str], killed: bool) -> None:
    """A failure must be a 503 with a JSON error and Retry-After; no answer at
    all is only expected from a worker killed with the request in flight."""
    if outcome.status == 200:
        return
    label = f"answers: {outcome.tag}: {outcome.status} {outcome.code}"
    if outcome.status == 0:
        if not killed:
            problems.append(f"{label}: no HTTP answer ({outcome.error})")
    elif outcome.status < 500:
        problems.append(f"{label}: a client error for a server-side fault")
    elif not outcome.json_body or not outcome.code:
        problems.append(f"{label}: no JSON error body")
    elif outcome.status != 503 or outcome.code not in TEMPORARY_CODES:
        problems.append(f"{label}: expected 503 with a temporary error code")
    elif not outcome.retry_after:
        problems.append(f"{label}: 503 without Retry-After")


def fork_check(server: LiveServer, port: int = 5432) -> dict:
    """Which of the server's processes hold which database sockets: a socket in
    two processes (or in the master) is a connection that crossed a fork."""
    connections = connections_to_port(port)
    holders: dict[int, list[int]] = {}
    pids = [server.pid, *server.workers()]
    for pid in pids:
        for inode in tcp_socket_inodes(pid) & set(connections):
            holders.setdefault(inode, []).append(pid)
    per_pid = Counter(pid for owners in holders.values() for pid in owners)
    shared = {inode: owners for inode, owners in holders.items() if len(owners) > 1}
    return {
        "master_connections": per_pid.get(server.pid, 0),
        "worker_connections": {str(p): per_pid.get(p, 0) for p in pids[1:]},
        "shared_sockets": len(shared),
        "ok": per_pid.get(server.pid, 0) == 0
        and not shared
        and all(per_pid.get(p, 0) > 0 for p in pids[1:]),
    }
