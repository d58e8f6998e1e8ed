#!/usr/bin/env bash
# Time the whole pipeline, then the lambda rerun, back to back (RESULTS.md "Timings").
#
#   benchmarks/timed_repro.sh <fresh clone with the Prime Pantry data.* params committed> [lambda]
#
# Writes, in that clone: repro.log / repro.time (`/usr/bin/time -v dvc repro`), exp.log / exp.time
# (`/usr/bin/time -v dvc exp run -S align.lambda=<lambda>`, default 0.3) and timing.txt (UTC start, after
# the repro, after the rerun). The repro outputs are committed before the rerun, so `git show HEAD:metrics/...`
# keeps the default run's metrics. Run it on an otherwise idle machine: nothing else may share the cores.
set -euo pipefail
cd "$1"
lambda="${2:-0.3}"
date -u +%H:%M:%S > timing.txt
/usr/bin/time -v dvc repro > repro.log 2> repro.time
date -u +%H:%M:%S >> timing.txt
git add -A . && git commit -qm "repro outputs"
/usr/bin/time -v dvc exp run -S "align.lambda=$lambda" > exp.log 2> exp.time
date -u +%H:%M:%S >> timing.txt
grep -h "Elapsed" repro.time exp.time
