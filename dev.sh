#!/usr/bin/env bash
# One entry point for users and CI:
#   ./dev.sh install   Debian packages (as root, when missing) + .venv with nospy and its dev tools
#   ./dev.sh demo      install, then run `nospy demo` on the bundled example
#   ./dev.sh test      install, then run every check: ruff, mypy --strict, pytest
#   ./dev.sh check     the checks only (no install)
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv

install_debian() {
    # Debian packages the tests and the tool use (real squashfs-tools, mtd-utils, tcpdump ...).
    mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' debian-packages.txt | tr -d ' ')
    [ ${#wanted[@]} -gt 0 ] || return 0
    missing=()
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "dev.sh: missing Debian packages (install them as root): ${missing[*]}" >&2
        return 0
    fi
    echo "dev.sh: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python() {
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "dev.sh: nospy needs Python >= 3.11 (found $("$PY" --version 2>&1))" >&2; exit 2; }
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV" 2>/dev/null || {
            # Debian's python3 ships venv separately
            [ "$(id -u)" = 0 ] && apt-get install -y -qq python3-venv >/dev/null && "$PY" -m venv "$VENV"; }
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
    # pip byte-compiles what it installs, but not an editable install's sources: without this, every
    # command compiles nospy's modules again where PYTHONDONTWRITEBYTECODE is set (0.2 s a command)
    "$VENV/bin/python" -m compileall -q src/nospy >/dev/null
}

install() { install_debian; install_python; }

check() {
    "$VENV/bin/ruff" check src tests fuzz benchmarks
    "$VENV/bin/ruff" format --check src tests fuzz benchmarks
    "$VENV/bin/mypy"
    "$VENV/bin/pytest" "$@"
}

cmd=${1:-}
shift || true
case "$cmd" in
    install) install ;;
    demo) install; "$VENV/bin/nospy" demo "$@" ;;
    test) install; check "$@" ;;
    check) check "$@" ;;
    *) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
