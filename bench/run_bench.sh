#!/usr/bin/env bash
# run_bench.sh - the benchmark figures (run by `make bench`): MobileCLIP-S0, -S2
# and -B, image and text encoders, batch 1 and 16, 1 and 2 threads, on built-in
# architectures with seeded random weights (no download).  Prints the bench
# lines of `mobileclip bench`; each model runs in its own process so that its
# peak_rss_mb is its own.  Settings by environment:
#   MODELS="mobileclip_s0 mobileclip_s2 mobileclip_b"  TOWERS="image text"
#   BATCH=1,16  THREADS=1,2  RUNS=3  WARMUP=1  BUDGET=20 (seconds of timed runs per
#   measurement; at least one run)  BIN=build/mobileclip
# Then one short training-step run (`mobileclip bench-train`: full-size S0,
# forward + backward + AdamW): TRAIN_BATCH=2 TRAIN_STEPS=1 (TRAIN=0 skips it;
# the documented figure uses TRAIN_BATCH=8).
#   OMP_WAIT_POLICY=passive unless set: on a shared machine, spinning OpenMP
#   workers stall every fork/join when another job holds a core.
set -u
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
BIN=${BIN:-build/mobileclip}
MODELS=${MODELS:-"mobileclip_s0 mobileclip_s2 mobileclip_b"}
TOWERS=${TOWERS:-"image text"}
BATCH=${BATCH:-1,16}
THREADS=${THREADS:-1,2}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1}
BUDGET=${BUDGET:-20}
rc=0
for m in $MODELS; do
  for t in $TOWERS; do
    # each process prints its machine line: peak_ratio is against that line's SGEMM peak
    if out=$("$BIN" bench --model "$m" --tower "$t" --batch "$BATCH" --threads "$THREADS" \
               --runs "$RUNS" --warmup "$WARMUP" --budget "$BUDGET" 2>&1); then :; else
      echo "# $m $t: failed (exit $?)"; rc=1
    fi
    printf '%s\n' "$out"
  done
done
if [ "${TRAIN:-1}" != 0 ]; then
  if out=$("$BIN" bench-train --model mobileclip_s0 --batch "${TRAIN_BATCH:-2}" --steps "${TRAIN_STEPS:-1}" \
             --warmup 0 2>/dev/null); then :; else
    echo "# bench-train: failed (exit $?)"; rc=1
  fi
  printf '%s\n' "$out"
fi
exit $rc
