#!/usr/bin/env bash
# Build the documentation site strictly (every warning is an error), offline.
# Usage: bash scripts/docs.sh [extra mkdocs build flags, e.g. -d /tmp/site]
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_MKDOCS_2_WARNING=1
python -m mkdocs build --strict "$@"
