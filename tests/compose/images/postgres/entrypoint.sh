#!/bin/bash
# The stand-in postgres image's entrypoint (see Dockerfile). `postgres ...`
# initialises an empty $PGDATA as the official image does, then runs the
# server as the postgres user; any other command (psql ...) runs as given.
set -eu
if [ "${1:0:1}" = - ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # as the official image: POSTGRES_PASSWORD or the file POSTGRES_PASSWORD_FILE names
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        [ -z "${POSTGRES_PASSWORD:-}" ] ||
            { echo "both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set" >&2; exit 1; }
        POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
    fi
    : "${POSTGRES_PASSWORD:?the postgres image needs POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE}"
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    pw=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pw" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pw"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    # The initialising server listens on a private socket only, so a health
    # check (pg_isready on the default socket) fails until the real one runs.
    sock=$(mktemp -d)
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k $sock" -w -s start
    q=(psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -U "$user")
    if [ "$db" != postgres ]; then
        "${q[@]}" -d postgres -v db="$db" <<<'CREATE DATABASE :"db";'
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case $f in
        *.sh)
            # as the official image: run when executable, else sourced
            echo "initdb: running $f"
            if [ -x "$f" ]; then
                PGHOST=$sock PGUSER=$user PGDATABASE=$db POSTGRES_USER=$user POSTGRES_DB=$db "$f"
            else
                PGHOST=$sock PGUSER=$user PGDATABASE=$db . "$f"
            fi
            ;;
        *.sql) echo "initdb: running $f"; "${q[@]}" -d "$db" -f "$f" ;;
        *.sql.gz) echo "initdb: running $f"; gunzip -c "$f" | "${q[@]}" -d "$db" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w -s stop
    rmdir "$sock"
    echo "initdb: database $db of user $user ready"
fi
exec "$@"
