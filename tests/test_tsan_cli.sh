#!/usr/bin/env bash
# test_tsan_cli.sh - the CLI built with ThreadSanitizer (build/tsan/mobileclip)
# embeds a folder with decode threads and 1, 2 and 3 workers (each its own
# context on the shared model): the embeddings are byte-identical and no data
# race is reported (a report makes the run exit 66).  Run from the project
# root (make test, make tsan-test).
set -u
pass=0; fail=0
check() { if [ "$1" = 0 ]; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $2" >&2; fi; }
fx=${MC_FIXTURES:-$(pwd)/../shared/fixtures}
cli=build/tsan/mobileclip
tmp=$(mktemp -d /tmp/mc_tsan_cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/imgs"
for f in chelsea.png astronaut.png coffee.png camera.png logo.png hubble_deep_field.jpg; do
  cp "$fx/images/$f" "$tmp/imgs/"
done
export TSAN_OPTIONS="halt_on_error=0:exitcode=66" MOBILECLIP_VOCAB="$fx/tokenizer/bpe_simple_vocab_16e6.txt.gz"
for k in 1 2 3; do
  "$cli" embed-image -m "$fx/models/oc_mobileclip2_s0" --batch 2 --workers $k -o "$tmp/w$k.npy" "$tmp/imgs" \
    >"$tmp/w$k.log" 2>&1
  rc=$?
  check $rc "embed-image --workers $k under ThreadSanitizer (exit $rc): $(grep -m3 -E 'WARNING|SUMMARY|mobileclip:' "$tmp/w$k.log")"
done
for k in 2 3; do
  cmp -s "$tmp/w1.npy" "$tmp/w$k.npy"; check $? "--workers $k gives the embeddings of --workers 1"
done
echo "test_tsan_cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
