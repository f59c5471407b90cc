#!/bin/sh
# The image's entrypoint: on SQLite (no DATABASE_URL, or a sqlite: one), bring
# the schema up to date, then run the command (Gunicorn by default).
#
# The lock makes containers that share /app/instance migrate one at a time;
# Gunicorn's workers never migrate. PostgreSQL is left to the migration job
# (docker-compose.yml's `migrate`, deploy/k8s/migration-job.yaml), which runs
# once before any replica starts. SNAPCLASS_MIGRATE=0 skips this step.
set -eu
case "${DATABASE_URL:-sqlite:}" in
  sqlite:*)
    if [ "${SNAPCLASS_MIGRATE:-1}" = "1" ]; then
      flock /app/instance/.migrate.lock flask db upgrade
    fi
    ;;
esac
exec "$@"
