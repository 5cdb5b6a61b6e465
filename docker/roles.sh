#!/bin/bash
# docker/roles.sh — the roles service of docker/docker-compose.yml: a
# one-shot after `dagq db migrate`, run in the postgres image as the schema
# owner (migrate_database_url), that makes the login roles the README's
# "Security" section asks for, each a member of exactly its dagq group role:
#
#   secret (/run/secrets/)    member of                   used by
#   scheduler_database_url    dagq_scheduler              scheduler-1, scheduler-2
#   worker_database_url       dagq_worker                 worker
#   web_database_url          dagq_web                    web (dagq-web)
#   author_database_url       dagq_author, $TEAM_ROLE     example-dag (an ETL team's author)
#   operator_database_url     dagq_operator, $TEAM_ROLE   cli (an operator of that team)
#   admin_database_url        dagq_admin                  admin (dagq tokens)
#
# Each login's name and password are those of its URL. A login missing is
# created, one present gets its URL's password (so changing a URL file and
# `up -d` rotates it; the programs that log in with it read the new one
# when they are recreated), and every run checks that none of them is a
# superuser or has CREATEROLE or BYPASSRLS. $TEAM_ROLE (default etl_team),
# NOLOGIN, owns the example DAG: its author may change it, its operator act
# on it. Idempotent; prints the logins, never a password.
set -eu
sec=/run/secrets
team=${TEAM_ROLE:-etl_team}
re='^postgres(ql)?://([A-Za-z0-9_]+):([A-Za-z0-9._~-]+)@'

# parse NAME: u and p, the user and password of the URL in the secret NAME
parse() {
    local url
    url=$(cat "$sec/$1") || exit 1
    if ! [[ $url =~ $re ]]; then
        echo "roles: $1 is not postgresql://USER:PASSWORD@... (a name of letters, digits and _," \
            "a password of letters, digits and -._~)" >&2
        exit 1
    fi
    u=${BASH_REMATCH[2]} p=${BASH_REMATCH[3]}
}

parse migrate_database_url
owner=$u
owner_url=$(cat "$sec/migrate_database_url")
export PGPASSWORD=$p # the URL without it goes on psql's command line

sql="SET client_min_messages = warning;
SELECT current_database() AS db \\gset
SELECT format('CREATE ROLE %I NOLOGIN', '$team')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$team') \\gexec
"
logins=() summary=()
for spec in scheduler:dagq_scheduler worker:dagq_worker web:dagq_web \
    "author:dagq_author $team" "operator:dagq_operator $team" admin:dagq_admin; do
    parse "${spec%%:*}_database_url"
    case " ${logins[*]} $owner " in *" $u "*)
        echo "roles: ${spec%%:*}_database_url names $u, which another URL names too: give each program its own login" >&2
        exit 1
        ;;
    esac
    logins+=("$u")
    summary+=("$u (${spec#*:})")
    sql+="\\set login $u
\\set pw '$p'
SELECT format('CREATE ROLE %I LOGIN', :'login')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'login') \\gexec
ALTER ROLE :\"login\" LOGIN PASSWORD :'pw';
GRANT CONNECT ON DATABASE :\"db\" TO :\"login\";
"
    for g in ${spec#*:}; do
        sql+="SELECT format('GRANT %I TO %I', '$g', :'login') WHERE NOT pg_has_role(:'login', '$g', 'MEMBER') \\gexec
"
    done
done
in=$(printf "'%s'," "${logins[@]}")
sql+="DO \$\$
DECLARE bad text;
BEGIN
    SELECT string_agg(rolname, ', ') INTO bad FROM pg_roles
     WHERE rolname IN (${in%,}) AND (rolsuper OR rolcreaterole OR rolbypassrls);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'roles: % may not be superuser, CREATEROLE or BYPASSRLS: a program logs in as it', bad;
    END IF;
END
\$\$;
"
printf '%s' "$sql" | psql -X -q -v ON_ERROR_STOP=1 "${owner_url/:$p@/@}" >/dev/null
echo "roles: as $owner: ${summary[*]}"
