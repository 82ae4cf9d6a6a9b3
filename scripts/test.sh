#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine (Python 3.11 + pip, root
# for apt-get) and run the whole suite. The README's test command runs this script.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# stilts: taplint, the TAP conformance referee. postgresql: binaries for the PostgreSQL
# backend tests (they run their own throwaway cluster on 127.0.0.1).
missing=()
command -v stilts >/dev/null 2>&1 || missing+=(stilts)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# node/npm: the web page's bundle is rebuilt from web/package-lock.json and compared;
# chromium (Debian's, never a downloaded one): the page's browser tests (Playwright).
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

VENV=${TAPHOUSE_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test]"

export PATH="$PWD/$VENV/bin:$PATH"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
