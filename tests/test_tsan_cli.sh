#!/usr/bin/env bash
# test_tsan_cli.sh - the CLI built with ThreadSanitizer (build/tsan/mobileclip)
# embeds a folder with decode threads and 1, 2 and 3 workers (each its own
# context on the shared model): the embeddings are byte-identical and no data
# race is reported; 'index' runs the same pipeline with 3 workers without a race (a report makes the run exit 66); 'eval' with and without
# decode threads gives the same figures, without a race.  Run from the project
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
# 'index': the same pipeline committing each batch to SQLite, 3 workers; then
# every image is found by its own embedding
"$cli" index -m "$fx/models/oc_mobileclip2_s0" --db "$tmp/p.db" --batch 2 --workers 3 "$tmp/imgs" >"$tmp/ix.log" 2>&1
rc=$?
check $rc "index --workers 3 under ThreadSanitizer (exit $rc): $(grep -m3 -E 'WARNING|SUMMARY|mobileclip:' "$tmp/ix.log")"
grep -q "6 added" "$tmp/ix.log"; check $? "index --workers 3 adds the 6 images: $(cat "$tmp/ix.log")"
# 'eval': decode threads one batch ahead of the encoder, over files (zero-shot)
# and over shard members (retrieval); the figures do not depend on them
mkdir -p "$tmp/val/cat" "$tmp/val/coffee" "$tmp/shard"
cp "$tmp/imgs/chelsea.png" "$tmp/imgs/logo.png" "$tmp/val/cat/"
cp "$tmp/imgs/coffee.png" "$tmp/imgs/camera.png" "$tmp/imgs/hubble_deep_field.jpg" "$tmp/val/coffee/"
for i in 0 1 2 3 4; do echo "caption number $i" > "$tmp/shard/$i.txt"; done
cp "$tmp/imgs/chelsea.png" "$tmp/shard/0.png"; cp "$tmp/imgs/astronaut.png" "$tmp/shard/1.png"
cp "$tmp/imgs/coffee.png" "$tmp/shard/2.png"; cp "$tmp/imgs/camera.png" "$tmp/shard/3.png"
cp "$tmp/imgs/hubble_deep_field.jpg" "$tmp/shard/4.jpg"
(cd "$tmp/shard" && tar cf ../ret.tar 0.png 0.txt 1.png 1.txt 2.png 2.txt 3.png 3.txt 4.jpg 4.txt)
for d in 0 3; do
  "$cli" eval -q -m "$fx/models/oc_mobileclip2_s0" --imagenet-val "$tmp/val" --retrieval "$tmp/ret.tar" \
    --batch 2 --decode-threads $d --json >"$tmp/eval$d.json" 2>"$tmp/eval$d.log"
  rc=$?
  check $rc "eval --decode-threads $d under ThreadSanitizer (exit $rc): $(grep -m3 -E 'WARNING|SUMMARY|mobileclip:' "$tmp/eval$d.log")"
done
cmp -s "$tmp/eval0.json" "$tmp/eval3.json"; check $? "eval: the figures with 3 decode threads are those with none"
grep -q '"num_samples": 5' "$tmp/eval3.json"; check $? "eval: 5 retrieval samples ($(cat "$tmp/eval3.json"))"
echo "test_tsan_cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
