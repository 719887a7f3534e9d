#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with every package of the workspace installed (editable).
# A second run compares a hash of the dependency files with the one recorded at the last install and skips.
# Override the interpreter with PYTHON=..., the torch pin with LGVQ_TORCH_SPEC=... (e.g. a CUDA build elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
stamp_file=$VENV/.lgvq-installed
want=$(cat requirements/constraints.txt pyproject.toml packages/*/pyproject.toml scripts/setup.sh | sha256sum | cut -c1-64)
if [[ -f $stamp_file && "$(cat "$stamp_file")" == "$want" ]]; then
  echo "setup: .venv is up to date (skipping install)"
  exit 0
fi
start=$(date +%s)
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# Local file indexes on some machines print one harmless "is ignored" warning per package: hide those lines.
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
# torch first, pinned by the constraints file: on machines with a local CPU wheel this takes it, not a CUDA build.
quiet "${pip[@]}" install -c requirements/constraints.txt "${LGVQ_TORCH_SPEC:-torch==2.13.0}"
quiet "${pip[@]}" install -c requirements/constraints.txt \
  -e packages/lgvq-core -e packages/lgvq-data -e packages/lgvq-downstream -e '.[dev,bench]'
# System parts of the downstream metrics: Java runs pycocoevalcap's PTB tokenizer and METEOR 1.5; WordNet
# (Debian's wordnet-base) gives VQA's WUPS. Installed when absent and apt-get can run; otherwise the
# captioning evaluation stops with how to install Java and WUPS is reported as absent.
missing=()
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
[[ -f /usr/share/wordnet/data.noun ]] || missing+=(wordnet-base wordnet-sense-index)
if (( ${#missing[@]} )); then
  if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}") >/dev/null 2>&1 || echo "setup: could not apt-get install ${missing[*]} (see README)"
  else
    echo "setup: not installed (needs root and apt-get): ${missing[*]} (see README)"
  fi
fi
echo "$want" > "$stamp_file"
echo "setup: installed in $(( $(date +%s) - start )) s; environment size $(du -sh "$VENV" | cut -f1)"
