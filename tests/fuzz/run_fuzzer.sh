#!/usr/bin/env bash
# Runs one libFuzzer target briefly from its seed corpus, without writing into the source tree.
# Usage: run_fuzzer.sh BINARY SEED_CORPUS_DIR WORK_DIR [SECONDS]
set -euo pipefail
bin=$1 seeds=$2 work=$3 seconds=${4:-${OUTPOST_FUZZ_SECONDS:-30}}
mkdir -p "$work"
exec "$bin" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
  "$work" "$seeds"
