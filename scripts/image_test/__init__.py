"""``make image-test``: build the container image and run it for real.

With whichever of docker (when its daemon answers) or podman is installed:

1. builds the image (random weights: no download), under podman with
   ``--format docker`` so that the HEALTHCHECK is kept;
2. runs it **alone**, as ``docker run -p 8000:8000 -e MODEL_WEIGHTS=random
   snapclass`` would (SQLite, migrated at start), published on a loopback
   port: waits for ``/readyz``, registers through the page (CSRF token from
   the form), creates an API token on the account page, posts a photo with it
   and reads the prediction back; checks that the processes do not run as
   root, that the start logged no error or warning, and each process's memory;
3. runs it again with ``--read-only`` and the documented tmpfs mounts
   (``/tmp`` and ``/app/instance``) and does the same round trip;
4. starts two containers at once on one ``/app/instance`` folder: one
   migrates, the other waits for the entrypoint's lock;
5. runs it the way ``docker-compose.yml`` does, against the local PostgreSQL
   (127.0.0.1:5432, user postgres; a database of its own, created and dropped
   here) and Redis (127.0.0.1:6379): the migration job first, then two
   replicas in production mode with one ``SECRET_KEY``; a session and a token
   made on one replica work on the other, and failed sign-ins are counted
   across both (Redis).

The compose-like containers use the host's network (PostgreSQL and Redis are
on its loopback), each on a free port. Everything started is stopped and
removed at the end, whatever happened; the image is kept. Prints each check as
it passes and exits 1 on the first failure.

``engine`` drives docker or podman, ``instance`` looks at one running
container from outside (readiness, sign-up, a prediction, its logs and
memory), ``alone`` runs the image on its own and ``compose`` runs it as
docker-compose.yml does; ``__main__`` is the command line.
"""
