#!/usr/bin/env bash
# Build the documentation site strictly (every warning is an error), offline.
# Usage: bash scripts/docs.sh [extra mkdocs build flags, e.g. -d /tmp/site]
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_MKDOCS_2_WARNING=1
# What a strict build does not check: cut summaries, internal API pages in
# the public nav, missing images, wide code lines, prompts in shell blocks.
KERAS_BACKEND="${KERAS_BACKEND:-tensorflow}" TF_CPP_MIN_LOG_LEVEL=3 \
    python scripts/check_docs.py
python -m mkdocs build --strict "$@"
