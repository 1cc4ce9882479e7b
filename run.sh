#!/usr/bin/env bash
# One entry point for a fresh machine (Python >= 3.10, no GPU needed):
#   ./run.sh app    set up (first time) and start the app on http://localhost:8501
#   ./run.sh test   set up (first time) and run the whole test suite
# Set VENV=/path to use another virtual environment; PORT=NNNN to move the app.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"

say() { echo "run.sh: $*" >&2; }

setup() {
    # `./run.sh app` and `./run.sh test` share $VENV: a second one started meanwhile waits for this set-up.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$VENV.setup.lock"
        flock -n 9 || { say "waiting for the set-up another ./run.sh is doing in $VENV …"; flock 9; }
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        say "first set-up: creating the virtual environment $VENV"
        "$PY" -m venv "$VENV"
    fi
    # Reinstall only when pyproject.toml changed since the last setup.
    local stamp="$VENV/.workbench-installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        say "installing the workbench and its dependencies into $VENV (2–3 minutes the first time; pip's progress follows)"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --progress-bar on -e ".[dev]" 2>&1 \
            | grep --line-buffered -E "^(Collecting|Installing|Successfully|ERROR|error)" || true
        "$VENV/bin/python" -c "import workbench, streamlit" 2>/dev/null \
            || { say "the install failed: run '$VENV/bin/python -m pip install -e \".[dev]\"' to see why"; exit 1; }
        touch "$stamp"
        say "set-up done"
    fi
    if command -v flock >/dev/null 2>&1; then exec 9>&-; fi  # released: the app or the tests may now share it
}

browser() {
    # The browser tests drive Debian's chromium (never a downloaded browser); install it when we can.
    if ! command -v chromium >/dev/null 2>&1; then
        if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
            say "installing Debian's chromium for the browser tests (about a minute)"
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
                || echo "run.sh: could not install chromium; browser tests will be skipped" >&2
        else
            echo "run.sh: chromium not found; browser tests will be skipped (apt-get install chromium)" >&2
        fi
    fi
}

case "${1:-app}" in
    app)
        setup
        # Last run's graph-view publications go before Streamlit measures static/ (it stops serving past 1 GiB).
        "$VENV/bin/python" -c "from workbench.netron import prune_published; prune_published('static')"
        exec "$VENV/bin/python" -m streamlit run app.py --server.port "${PORT:-8501}" "${@:2}"
        ;;
    test)
        setup
        browser
        say "running the test suite (about 10 minutes on 2 cores; -m 'not browser and not slow' for a quick run)"
        exec "$VENV/bin/python" -m pytest "${@:2}"
        ;;
    setup)
        setup
        ;;
    *)
        echo "usage: ./run.sh app|test|setup [extra args]" >&2
        exit 2
        ;;
esac
