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
# backend tests (they run their own throwaway cluster on 127.0.0.1). bubblewrap: the
# compute sandbox; python3-venv: the job environment's base interpreter (Debian's, which
# sandboxed uids can reach).
missing=()
command -v stilts >/dev/null 2>&1 || missing+=(stilts)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# node/npm: the web page's bundle is rebuilt from web/package-lock.json and compared;
# chromium (Debian's, never a downloaded one): the page's browser tests (Playwright).
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# A Java runtime (>= 17; Debian's default) for the Spark backend tests (pyspark, local[2]).
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

# The compute tests run real sandboxes: no skipping on a machine that cannot.
if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: run as root: the compute tests start user code as other uids" >&2
    exit 1
fi
if ! setpriv --reuid=65534 --regid=65534 --clear-groups bwrap --unshare-all --ro-bind / / true 2>/dev/null; then
    echo "scripts/test.sh: bubblewrap cannot create namespaces here; enable user" \
         "namespaces (sysctl user.max_user_namespaces=10000)" >&2
    exit 1
fi

VENV=${TAPHOUSE_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test]"
"$VENV/bin/python" -m pip install -q -e ".[spark]"

# The job Python environment of the compute tests, built once per machine with the real
# `taphouse compute setup` outside the work tree (sandboxed uids must reach it; a CI
# clone may sit under a private directory) and rebuilt when its package list changes.
export TAPHOUSE_TEST_JOB_ENV=${TAPHOUSE_TEST_JOB_ENV:-/var/cache/taphouse-test/jobenv}
stamp=$("$VENV/bin/python" -c 'from taphouse.compute.commands import JOB_PACKAGES; print(*JOB_PACKAGES)')
mkdir -p "$(dirname "$TAPHOUSE_TEST_JOB_ENV")"
(
    flock 9
    if [ "$(cat "$TAPHOUSE_TEST_JOB_ENV/.taphouse-packages" 2>/dev/null)" != "$stamp" ]; then
        rm -rf "$TAPHOUSE_TEST_JOB_ENV"
        "$VENV/bin/taphouse" compute setup --env "$TAPHOUSE_TEST_JOB_ENV" --python /usr/bin/python3
        echo "$stamp" > "$TAPHOUSE_TEST_JOB_ENV/.taphouse-packages"
    fi
) 9>"$(dirname "$TAPHOUSE_TEST_JOB_ENV")/.lock"

# The hub tests: configurable-http-proxy (npm) in front of a real JupyterHub; the users'
# Jupyter servers' environment (`taphouse hub setup`) and the kernels' (the compute job
# environment with ipykernel and matplotlib), built once per machine like the one above.
command -v configurable-http-proxy >/dev/null 2>&1 || npm install -g -s configurable-http-proxy@5
export TAPHOUSE_TEST_HUB_ENV=${TAPHOUSE_TEST_HUB_ENV:-/var/cache/taphouse-test/hubenv}
export TAPHOUSE_TEST_KERNEL_ENV=${TAPHOUSE_TEST_KERNEL_ENV:-/var/cache/taphouse-test/kernelenv}
hubstamp=$("$VENV/bin/python" -c 'from taphouse.compute.commands import JOB_PACKAGES; from taphouse.hub.commands import hub_packages, KERNEL_PACKAGES; print(*JOB_PACKAGES, *KERNEL_PACKAGES, *hub_packages())')
(
    flock 9
    if [ "$(cat "$TAPHOUSE_TEST_HUB_ENV/.taphouse-packages" 2>/dev/null)" != "$hubstamp" ] \
        || [ "$(cat "$TAPHOUSE_TEST_KERNEL_ENV/.taphouse-packages" 2>/dev/null)" != "$hubstamp" ]; then
        rm -rf "$TAPHOUSE_TEST_HUB_ENV" "$TAPHOUSE_TEST_KERNEL_ENV"
        "$VENV/bin/taphouse" compute setup --env "$TAPHOUSE_TEST_KERNEL_ENV" --python /usr/bin/python3
        "$VENV/bin/taphouse" hub setup --env "$TAPHOUSE_TEST_HUB_ENV" --python /usr/bin/python3 \
            --job-env "$TAPHOUSE_TEST_KERNEL_ENV"
        echo "$hubstamp" > "$TAPHOUSE_TEST_HUB_ENV/.taphouse-packages"
        echo "$hubstamp" > "$TAPHOUSE_TEST_KERNEL_ENV/.taphouse-packages"
    fi
) 9>"$(dirname "$TAPHOUSE_TEST_HUB_ENV")/.hub-lock"

export PATH="$PWD/$VENV/bin:$PATH"
# Types (configuration in pyproject.toml [tool.mypy]): before the tests, as they fail faster.
"$VENV/bin/python" -m mypy
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
