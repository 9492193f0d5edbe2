#!/usr/bin/env bash
# Runs every reproduction recipe under recipes/repro/ into
# checkpoints/repro/ (or $1), one after another, records each one's wall
# time in <run folder>/wall_seconds.txt, then regenerates REPRODUCTIONS.md
# from the run folders with `splitguard reproductions`.
#
#   scripts/reproduce.sh [RUNS_DIR]          # everything (~35 min on 2 cores)
#   ONLY=003 scripts/reproduce.sh            # only the recipes whose file starts with 003 (a seed's number)
#   SPLITGUARD=/path/to/splitguard scripts/reproduce.sh   # that binary, no build
#
# A run folder that already holds a finished report and its wall time is
# kept; an interrupted one is resumed (its wall time then counts only the
# resumed part), so the script can be stopped and started again. A seed
# whose runs are not in the runs folder keeps its section of the existing
# REPRODUCTIONS.md (marked as kept), so ONLY=<seed> regenerates that seed
# alone. A finished run folder is kept even when its recipe has changed
# since: delete it to rerun.
set -euo pipefail
runs="${1:-checkpoints/repro}"
case "$runs" in /*) ;; *) runs="$PWD/$runs" ;; esac
cd "$(dirname "$0")/.."
if [ -z "${SPLITGUARD:-}" ]; then
  cargo build --release --locked   # a no-op when up to date
  sg=target/release/splitguard
else
  sg="$SPLITGUARD"
fi
mkdir -p "$runs"

failed=0
want() { [ -z "${ONLY:-}" ] || [[ "$1" == ${ONLY}* ]]; }

# Times one command into $runs/$name/wall_seconds.txt, written only when
# it succeeds (so the file marks a finished run).
timed() {
  local dir="$1"; shift
  local t0; t0=$(date +%s)
  "$@" || return $?
  mkdir -p "$dir"
  echo $(( $(date +%s) - t0 )) > "$dir/wall_seconds.txt"
}

run_recipe() {
  local file="recipes/repro/$1.yaml" dir="$runs/$1"
  want "$1" || return 0
  # A finished run keeps its folder and its recorded wall time.
  [ -e "$dir/wall_seconds.txt" ] && return 0
  local resume=()
  [ -e "$dir" ] && resume=(--resume)
  echo "== $1 ($(date -u +%H:%M:%S))"
  timed "$dir" "$sg" run "$file" --out "$dir" ${resume[@]+"${resume[@]}"} || {
    echo "!! $1 failed; going on with the others" >&2; failed=1; }
}

leakage() {
  local sub="$1"; shift
  local dir="$runs/003-i2f/$sub"
  want 003 || return 0
  [ -e "$dir/wall_seconds.txt" ] && return 0
  echo "== 003-i2f/$sub ($(date -u +%H:%M:%S))"
  timed "$dir" "$sg" leakage recipes/repro/003-i2f.yaml --out "$dir" "$@" || {
    echo "!! 003-i2f/$sub failed; going on with the others" >&2; failed=1; }
}

leakage matched
leakage today --set leakage.attack.distance=cosine \
  --set leakage.attack.tv_weight=0.0001 --set leakage.attack.label=inferred
for scale in 0.1 1.0; do
  leakage "init-$scale" --set leakage.init_scale=$scale \
    --set 'leakage.defenses=[{kind: noise, scales: [0.01]}]'
done
run_recipe 002-golden-cnn6
run_recipe 001-patrol-l1
run_recipe 001-patrol
run_recipe 004-obfuscation
run_recipe 004-obfuscation-paper-schedule
run_recipe 000-dci-vgg
run_recipe 002-golden-vgg

"$sg" reproductions --runs "$runs" --out REPRODUCTIONS.md
exit "$failed"
