#!/usr/bin/env bash
# tests/alerts/venv.sh — prints the python of tests/.venv, a private virtual
# environment with aiosmtpd (the SMTP server of the e-mail alert test),
# created from PyPI the first time (git-ignored, like tests/.kafka). Lanes
# that need it at once wait for one another on a lock.
set -eu
cd "$(dirname "$0")/../.."
v=tests/.venv
exec 9>>tests/.venv.lock
flock 9
if ! "$v/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
    rm -rf "$v"
    python3 -m venv "$v" >&2
    "$v/bin/python" -m pip install -q --disable-pip-version-check 'aiosmtpd==1.4.6' >&2
fi
echo "$PWD/$v/bin/python"
