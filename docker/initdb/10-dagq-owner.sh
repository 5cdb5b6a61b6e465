#!/bin/bash
# docker/initdb/10-dagq-owner.sh — run once by the postgres image, as its
# superuser, when it creates the cluster (mounted into
# /docker-entrypoint-initdb.d by docker/docker-compose.yml): the role that
# owns dagq's schema, named with its password by the migrate_database_url
# secret. It logs in, has CREATEROLE (`dagq db migrate` creates dagq's group
# roles the first time, and the roles service the programs' logins), owns the
# database, and is no superuser: no dagq service ever gets a superuser's
# password. Nobody else may connect until the roles service grants CONNECT.
set -eu
url=$(cat /run/secrets/migrate_database_url)
re='^postgres(ql)?://([A-Za-z0-9_]+):([A-Za-z0-9._~-]+)@'
if ! [[ $url =~ $re ]]; then
    echo "initdb: migrate_database_url is not postgresql://USER:PASSWORD@... (a name of letters," \
        "digits and _, a password of letters, digits and -._~)" >&2
    exit 1
fi
# (the statements go on stdin, never on a command line; a failing one is
# not written to the server's log with its password)
psql -X -q -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" \
    --dbname "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" <<SQL
SET log_min_error_statement = panic;
\\set owner ${BASH_REMATCH[2]}
\\set pw '${BASH_REMATCH[3]}'
SELECT current_database() AS db \\gset
CREATE ROLE :"owner" LOGIN CREATEROLE PASSWORD :'pw';
ALTER DATABASE :"db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
echo "initdb: ${BASH_REMATCH[2]} owns the database, with CREATEROLE"
