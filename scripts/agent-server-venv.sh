#!/usr/bin/env bash
# Creates the Python venv with the real OpenHands agent server that the end-to-end
# tests in tests/tests/real_agent_server.rs run (tests/src/agent_server.rs makes the
# same venv lazily; run this ahead of time, e.g. in CI before going offline).
#
# Where: $SANDBOXD_AGENT_VENV, else ${CARGO_TARGET_DIR:-<repo>/target}/agent-server-venv.
# Python: $PYTHON312, else python3.12 on PATH, else $(pyenv root)/versions/3.12*/bin/python3.12.
# Idempotent: a complete venv (marked by .sandboxd-openhands-agent-server-1.58.2) is
# left alone. Takes the same lock (<venv>.lock, flock) as the tests, so running it
# while tests install is safe. Prints the venv's python path on stdout.
set -euo pipefail

requirement="openhands-agent-server==1.58.2"
marker=".sandboxd-openhands-agent-server-1.58.2"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SANDBOXD_AGENT_VENV:-${CARGO_TARGET_DIR:-$repo/target}/agent-server-venv}"
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
python="$venv/bin/python"

is_312() { "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' 2>/dev/null; }

find_python312() {
    if [[ -n "${PYTHON312:-}" ]]; then
        if "$PYTHON312" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            echo "$PYTHON312"; return 0
        fi
        echo "PYTHON312=$PYTHON312 is not a Python >= 3.12" >&2
    fi
    if command -v python3.12 >/dev/null 2>&1 && is_312 "$(command -v python3.12)"; then
        command -v python3.12; return 0
    fi
    local root="${PYENV_ROOT:-}"
    if [[ -z "$root" ]] && command -v pyenv >/dev/null 2>&1; then root="$(pyenv root 2>/dev/null || true)"; fi
    root="${root:-$HOME/.pyenv}"
    local candidate
    # Newest 3.12 patch release first.
    for candidate in $(ls -d "$root"/versions/3.12* 2>/dev/null | sort -t. -k3,3nr); do
        if [[ -x "$candidate/bin/python3.12" ]] && is_312 "$candidate/bin/python3.12"; then
            echo "$candidate/bin/python3.12"; return 0
        fi
    done
    return 1
}

if [[ -f "$venv/$marker" && -e "$python" ]]; then
    echo "$python"
    exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

if [[ ! -f "$venv/$marker" || ! -e "$python" ]]; then
    if [[ ! -e "$python" ]]; then
        if [[ -e "$venv" ]]; then
            # Only ever delete a half-made venv, never a directory named by mistake.
            if [[ -f "$venv/pyvenv.cfg" || -z "$(ls -A "$venv")" ]]; then
                rm -rf "$venv"
            else
                echo "error: $venv exists but is no venv: remove it or set SANDBOXD_AGENT_VENV elsewhere" >&2
                exit 1
            fi
        fi
        if ! base="$(find_python312)"; then
            echo "error: Python 3.12 not found (tried \$PYTHON312, python3.12 on PATH, pyenv versions/3.12*)." >&2
            echo "Install it (e.g. 'pyenv install 3.12') or set PYTHON312=/path/to/python3.12." >&2
            exit 1
        fi
        echo "creating $venv with $base" >&2
        "$base" -m venv "$venv"
    fi
    echo "installing $requirement into $venv" >&2
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$python" -m pip install --quiet --progress-bar off "$requirement" >&2
    printf '%s\n%s\n' "$requirement" "$python" > "$venv/$marker"
fi

echo "$python"
