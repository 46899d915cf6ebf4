#!/usr/bin/env bash
# The full suite on TensorFlow (with the docstring examples), then the
# backend-sensitive tests on JAX and PyTorch, each in its own process
# (KERAS_BACKEND must be set before keras is imported).
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3
KERAS_BACKEND=tensorflow python -m pytest -q -p no:cacheprovider \
    --doctest-modules keras_swn tests "$@"
for backend in jax torch; do
    KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider \
        -m backend_sensitive tests "$@"
done
# Static types (configured in mypy.ini) and lint (pyproject's [tool.ruff]).
python -m mypy keras_swn
python -m ruff check keras_swn tests benchmarks examples
# The documentation site, strictly (every warning is an error), offline.
bash scripts/docs.sh -d "$(mktemp -d)"
