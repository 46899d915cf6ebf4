#!/usr/bin/env bash
# The "When does the search pay?" study: every step resumable (rerun this
# script and the finished runs are skipped; a killed search run resumes from
# its last epoch). Usage, from the repository root:
#
#   DATA=/path/to/shared/data nohup nice -n 10 bash benchmarks/search_study.sh \
#       > study.log 2>&1 &
#
# Run it on a frozen copy of the code (e.g. `git worktree add` of a commit,
# with PYTHONPATH pointing there) when the working tree is being edited: a
# TensorFlow run re-reads source files when it traces a new model.
set -u
cd "$(dirname "$0")/.." || exit 1
PY=${PY:-python}
D=${DATA:?set DATA to the folder of cifar10_train_10k.npz and cifar10_extra_40k.npz}
R=benchmarks/results
COMMON=(--data "$D/cifar10_train_10k.npz" --eval_data "$D/cifar10_extra_40k.npz"
        --depth 16 --width 1 --epochs 15 --ensemble_members "" --seeds 0 1 2)
q() { echo "=== $(date -u +%FT%TZ) quality.py $*"; $PY benchmarks/quality.py "${COMMON[@]}" "$@"; }
S=$R/quality_study_wrn16-1.json
ROWS=(bins search bins_matched random plain)
# 1. 40% of WRN-16-1, 3 search epochs.
q --search_epochs 3 --budget_fractions 0.4 --methods "${ROWS[@]}" --output $S
# 2. 1 search epoch (the default at 15 epochs) at 40% and 60%, with plain
#    networks narrowed to each budget's count, and the random control at 60%
#    (search_epochs is a setting of the file, so each length has its own).
S1=$R/quality_study_wrn16-1_se1.json
q --search_epochs 1 --budget_fractions 0.4 0.6 \
  --methods bins search bins_matched plain_matched --output $S1
q --search_epochs 1 --budget_fractions 0.6 --methods search random --output $S1
# 3. A two-member ensemble of different depths at 40% of its parameters,
#    one bank, against the unshared ensemble.
q --search_epochs 1 --ensemble_members 16-1,10-1 \
  --ensemble_budget_fraction 0.4 \
  --ensemble_methods plain bins search bins_matched random --methods \
  --output $R/quality_study_ens16-1_10-1.json
# 4. 6 search epochs at 40%.
q --search_epochs 6 --budget_fractions 0.4 \
  --methods bins search bins_matched random --output "$R/quality_study_wrn16-1_se6.json"
echo "=== $(date -u +%FT%TZ) study done"
