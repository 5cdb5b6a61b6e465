#!/bin/bash
# The image's health check: GET /healthz on DAGQ_HTTP_PORT without curl
# (bash's /dev/tcp keeps the runtime image small). Healthy when the answer
# is 200, or when DAGQ_HTTP_PORT is unset (a program that serves nothing).
[ -n "${DAGQ_HTTP_PORT:-}" ] || exit 0
exec 3<>"/dev/tcp/127.0.0.1/$DAGQ_HTTP_PORT" || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
read -r -t 3 _ status _ <&3 || exit 1
[ "$status" = 200 ]
