#!/bin/sh
# Entrypoint of the tenant image: one organisation's workspace-server.
#
# Checks the required environment, waits (bounded) for the database while applying the
# migrations, then replaces itself with the server so that signals (SIGTERM on stop) reach it
# directly. Arguments are passed on to `workspace-server serve`.
set -eu

server="${WORKSPACE_SERVER_BIN:-workspace-server}"
db_wait_seconds="${DB_WAIT_SECONDS:-60}"
retry_interval_seconds="${DB_RETRY_INTERVAL_SECONDS:-2}"

missing=0
for name in DATABASE_URL MOLECULE_ORG_ID ADMIN_TOKEN SECRETS_ENCRYPTION_KEY; do
    eval "value=\${$name:-}"
    if [ -z "$value" ]; then
        echo "entrypoint: required environment variable $name is not set" >&2
        missing=1
    fi
done
if [ "$missing" -ne 0 ]; then
    exit 1
fi

for setting in "DB_WAIT_SECONDS=$db_wait_seconds" "DB_RETRY_INTERVAL_SECONDS=$retry_interval_seconds"; do
    case "${setting#*=}" in
        '' | *[!0-9]*)
            echo "entrypoint: ${setting%%=*} must be a whole number of seconds, got '${setting#*=}'" >&2
            exit 1
            ;;
    esac
done
if [ "$retry_interval_seconds" -eq 0 ]; then
    retry_interval_seconds=1
fi

# `migrate` fails while the database does not accept connections yet, so retrying it is also
# the wait for the database. Its own error output says why each attempt failed.
# SIGTERM while waiting ends the container at once (sleep runs in the background for that).
trap 'exit 143' TERM INT
waited=0
until "$server" migrate; do
    status=$?
    if [ "$status" -eq 2 ]; then
        echo "entrypoint: migrate failed for a reason retrying cannot fix (see above); giving up" >&2
        exit 1
    fi
    if [ "$waited" -ge "$db_wait_seconds" ]; then
        echo "entrypoint: migrations did not succeed within ${db_wait_seconds}s (DB_WAIT_SECONDS); giving up" >&2
        exit 1
    fi
    echo "entrypoint: database not ready, retrying in ${retry_interval_seconds}s (${waited}s of ${db_wait_seconds}s)" >&2
    sleep "$retry_interval_seconds" &
    wait $!
    waited=$((waited + retry_interval_seconds))
done

exec "$server" serve "$@"
