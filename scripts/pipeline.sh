#!/usr/bin/env bash
# Runs the DVC pipeline from the repository root with the project's environment. Extra arguments go to `dvc repro`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "pipeline: this folder is not a git checkout; DVC needs one (git init && git add -A && git commit)" >&2
  exit 2
fi
start=$(date +%s)
dvc repro "$@"
echo "pipeline: done in $(( $(date +%s) - start )) s; results in reports/ (dvc metrics show, dvc plots show)"
