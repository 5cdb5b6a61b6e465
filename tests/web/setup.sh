#!/bin/sh
# Installs what dagq-web's browser tests need, once: Debian's chromium and
# chromium-driver (scripts/deps.sh) and Selenium, pinned, into the private
# venv tests/.venv (git-ignored). Prints the venv's python.
set -eu
cd "$(dirname "$0")/../.."
venv=tests/.venv
if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check selenium==4.27.1 >&2
fi
echo "$PWD/$venv/bin/python"
