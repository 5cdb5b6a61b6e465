#!/bin/sh
# docker/make-secrets.sh DIR — new secrets for docker/docker-compose.yml:
# one file per secret in DIR (made, mode 0700), each password 32 random hex
# digits. Use them instead of the examples:
#
#   docker/make-secrets.sh docker/secrets          (docker/secrets is in .gitignore)
#   export DAGQ_SECRETS=./secrets                  (relative to docker/)
#   docker compose -f docker/docker-compose.yml up -d
#
# The files are what docker/secrets.example holds, with other passwords:
#   postgres_password         the PostgreSQL superuser's (the postgres service only)
#   migrate_database_url      the schema owner's (dagq_owner: migrate, roles)
#   scheduler_database_url    the schedulers' login (a member of dagq_scheduler)
#   worker_database_url       the workers' login (dagq_worker)
#   web_database_url          dagq-web's login (dagq_web)
#   author_database_url       an ETL team's author (dagq_author; the example-dag loader)
#   operator_database_url     an operator (dagq_operator; the cli service)
#   admin_database_url        an administrator (dagq_admin; the admin service: tokens)
#   redis_password            Redis's requirepass
#   redis_broker_url          the broker URL with it (BROKER=redis, the default)
#   kafka_broker_url          the broker URL of BROKER=kafka (no password)
# A login's name and password are read from its URL by the roles service,
# which creates or updates the role at each `up`: to rotate a password,
# change the URL file, `up -d` again, and recreate the services that log in
# with it (`up -d --force-recreate SERVICE...`: the programs read their
# secrets when they start). Keep passwords to letters, digits
# and "-._~" (they stand in URLs unencoded). Docker bind-mounts each file
# into the containers that need it as /run/secrets/NAME, where users other
# than root read it: the files are readable by all, the directory only by
# its owner.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
mkdir -p "$dir"
chmod 700 "$dir"
pw() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
put() { # NAME VALUE
    (umask 022; printf '%s\n' "$2" >"$dir/$1.tmp")
    mv -f "$dir/$1.tmp" "$dir/$1"
}
db() { # NAME ROLE: the URL of ROLE with a new password
    put "$1" "postgresql://$2:$(pw)@postgres:5432/dagq"
}
put postgres_password "$(pw)"
db migrate_database_url dagq_owner
db scheduler_database_url sched
db worker_database_url worker
db web_database_url web
db author_database_url etl_author
db operator_database_url etl_operator
db admin_database_url admin
redis=$(pw)
put redis_password "$redis"
put redis_broker_url "redis://:$redis@redis:6379/0"
put kafka_broker_url "kafka://kafka:9092"
echo "$0: new secrets in $dir"
