#!/usr/bin/env bash
# Builds the Python package (crates/mirkit-py) with maturin into a virtual environment
# kept outside the checkout and runs its pytest suite. Called by .ci/run.
#
#   tools/py_test.sh [pytest args...]
#
# MIRKIT_PYENV: the venv (default $HOME/.cache/mirkit/pyenv); CARGO_TARGET_DIR as for
# cargo. The module is built in the dev profile (optimised, see Cargo.toml) so it shares
# the build of `cargo test`; the tagger's scores are checked against that build's CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mirkit/target}"
venv="${MIRKIT_PYENV:-$HOME/.cache/mirkit/pyenv}"
req=crates/mirkit-py/requirements-test.txt
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
# reinstall only when the requirements changed
stamp="$venv/.mirkit-requirements"
if ! cmp -s "$req" "$stamp"; then
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
fi
cargo build -q --bin mirkit
(cd crates/mirkit-py && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" maturin develop -q)
MIRKIT_BIN="$CARGO_TARGET_DIR/debug/mirkit" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
    -W ignore::DeprecationWarning crates/mirkit-py/tests "$@"
