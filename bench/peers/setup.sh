#!/usr/bin/env bash
# Peers of ConvGrade for bench/peers.py: nbgrader and Otter-Grader from PyPI, in their own venv
# (bench/peers/.venv), with what the W1A1 notebooks import. Idempotent: does nothing when the
# venv already holds exactly these pins.
#
#     bash bench/peers/setup.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3}"
# Pinned to what was installed and benchmarked; numpy/matplotlib/h5py as in ConvGrade's own venv
# (numpy < 2.4: the course's float(b) on a (1,1,1) array only warns there).
PINS=(
  "nbgrader==0.9.6"
  "otter-grader==7.0.0"
  "numpy==2.3.5"
  "matplotlib==3.11.2"
  "h5py==3.14.0"
)
STAMP="$VENV/.peers-stamp"
WANT="$(printf '%s\n' "${PINS[@]}")"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/nbgrader" ] && [ -x "$VENV/bin/otter" ]; then
  echo "peers venv up to date: $VENV"
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "${PINS[@]}"
# The kernel both tools start is this venv's python3 (its own ipykernel).
"$VENV/bin/python" -m ipykernel install --prefix "$VENV" --name python3 >/dev/null
printf '%s\n' "$WANT" > "$STAMP"
"$VENV/bin/nbgrader" --version
"$VENV/bin/otter" --version
