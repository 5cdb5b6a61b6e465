#!/bin/bash
# The stand-in redis image's entrypoint (see Dockerfile): `redis-server ...`
# runs as the redis user in /data, protected mode off unless the arguments
# say otherwise; any other command runs as given.
set -eu
if [ "${1:0:1}" = - ]; then set -- redis-server "$@"; fi
if [ "$1" != redis-server ]; then exec "$@"; fi
if [ "$(id -u)" = 0 ]; then
    chown redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
shift
conf=()
# a configuration file must come first
if [ $# -gt 0 ] && [ "${1:0:1}" != - ]; then conf=("$1"); shift; fi
exec redis-server "${conf[@]}" --protected-mode no "$@"
