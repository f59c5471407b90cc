"""``make fault-run``: faults under load against a real Gunicorn deployment.

Clients post pairs of images with a bearer token while, one at a time:

* ``worker_kill``: a worker gets ``kill -9`` while requests are in flight;
* ``postgres_restart``: PostgreSQL is stopped, kept down, and started again;
* ``sqlite_read_only``: the SQLite database and its WAL become immutable
  (``chattr +i``; permissions mean nothing to root) on a small ext4 volume;
* ``disk_full``: that volume fills up (a filler file until ENOSPC).

Afterwards every prediction id answered 200 must exist in the database with
its thumbnail; requests that got an HTTP error must have left no row, no batch
may be half stored, failures must be 5xx with a JSON error (503 + Retry-After
for temporary causes), and the server must recover by itself: a new request
succeeds and ``/readyz`` answers 200, with no restart. For PostgreSQL it also
checks that no database connection is shared across a fork (master and
workers hold their own sockets).

The modules, in the order a run uses them: ``runs`` starts a server per
backend and runs its scenarios; ``scenario`` holds one fault under ``load``
(the clients and the /readyz poller), with the fault from ``injectors`` (on a
small ext4 ``volume`` for SQLite); ``verify`` compares the answers with the
database; ``report`` writes the tables; ``__main__`` is the command line.
"""
