#!/bin/sh
# Installs, from Debian's packages, what building and testing dagq needs,
# and only what is missing. Uses sudo when not root.
set -eu
PKGS="build-essential pkg-config libpq-dev libhiredis-dev libssl-dev openssl librdkafka-dev libmsgpack-dev
libmicrohttpd-dev libcurl4-openssl-dev python3-venv postgresql postgresql-contrib pgbouncer redis-server redis-tools kcat tzdata curl python3
default-jre-headless maven docker-compose clang-format procps psmisc util-linux
chromium chromium-driver podman runc netavark aardvark-dns iptables debootstrap"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
# A JDK already on PATH (the machine's own) is as good as Debian's JRE.
case " $missing " in *" default-jre-headless "*)
    if command -v java >/dev/null 2>&1; then missing=$(echo "$missing" | sed 's/ default-jre-headless//'); fi ;;
esac
case " $missing " in *" maven "*)
    if command -v mvn >/dev/null 2>&1; then missing=$(echo "$missing" | sed 's/ maven//'); fi ;;
esac
[ -z "$(echo $missing)" ] && exit 0
echo "deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
