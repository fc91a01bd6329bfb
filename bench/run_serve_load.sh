#!/usr/bin/env bash
# run_serve_load.sh - the load-test figures of docs/serve.md (make bench-serve):
# starts 'mobileclip serve' on a free loopback port and runs build/serve_load
# against it (text embeddings, image embeddings, and search when DB is set, at
# 1, 4 and 16 clients, SECONDS each), then stops it with SIGTERM.  Settings:
#   MODEL=...            a model path or name (default: full-size MobileCLIP-S0
#                        with seeded random weights, no download: RANDOM_MODEL=mobileclip_s0)
#   DB=photos.db         the index to serve (search rows)
#   SECONDS_PER_ROW=5  CLIENTS=1,4,16  SERVE_ARGS="--workers 2 --batch 8"
#   IMAGE=../shared/fixtures/images/chelsea_q90.jpg (451 x 300 JPEG)
set -u
BIN=${BIN:-build/mobileclip}
LOAD=${LOAD:-build/serve_load}
export MOBILECLIP_VOCAB=${MOBILECLIP_VOCAB:-../shared/fixtures/tokenizer/bpe_simple_vocab_16e6.txt.gz}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
if [ -n "${MODEL:-}" ]; then src=(-m "$MODEL"); else src=(--random-weights "${RANDOM_MODEL:-mobileclip_s0}"); fi
db=(); [ -n "${DB:-}" ] && db=(--db "$DB")
out=$(mktemp)
# shellcheck disable=SC2086
"$BIN" serve "${src[@]}" "${db[@]}" --port 0 -q ${SERVE_ARGS:-} >"$out" 2>"$out.err" &
pid=$!
for _ in $(seq 600); do grep -q "^listening on" "$out" && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
port=$(sed -n 's|^listening on http://[^ ]*:\([0-9]*\)/$|\1|p' "$out")
if [ -z "$port" ]; then echo "run_serve_load: the server did not start: $(cat "$out.err")"; kill $pid 2>/dev/null; exit 1; fi
head -1 "$out.err"
"$LOAD" --port "$port" --pid $pid --seconds "${SECONDS_PER_ROW:-5}" --clients "${CLIENTS:-1,4,16}" \
  --image "${IMAGE:-../shared/fixtures/images/chelsea_q90.jpg}"
rc=$?
kill -TERM $pid
wait $pid
src=$?
[ $src -eq 0 ] || { echo "run_serve_load: the server exited with $src: $(tail -3 "$out.err")"; rc=1; }
rm -f "$out" "$out.err"
exit $rc
