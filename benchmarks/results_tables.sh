#!/usr/bin/env bash
# Regenerate RESULTS.md's tables over seeds (issue 14): each experiment set run over SEEDS seeds on Prime
# Pantry as DVC experiments, then `pad report` writes the per-run table, the table over seeds
# (mean ± std), the user-history table and the paired tests (of the workspace run) to results_tables.md.
#
#   benchmarks/results_tables.sh <clone with the Prime Pantry data.* params committed> [SEEDS] [SET ...]
#
# SEEDS defaults to 5 (the committed seed and the 4 after it); the sets default to default, rq5, rq3
# and rq2. Each member x seed is one downstream run (4-5 minutes on the 2-core box), so the defaults are
# 17 members x 5 seeds: several hours. Name fewer sets to run a part (e.g. `... 5 default`).
set -euo pipefail
cd "$1"
seeds="${2:-5}"
sets=("${@:3}")
[ ${#sets[@]} -gt 0 ] || sets=(default rq5 rq3 rq2)
for set in "${sets[@]}"; do
  python -m pad exp run "$set" --seeds "$seeds"
done
python -m pad report --out results_tables.md
echo "wrote $1/results_tables.md"
