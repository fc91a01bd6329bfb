#!/usr/bin/env bash
# Runs each libFuzzer binary for SECONDS (bounded), one after another, with a
# corpus under build/fuzz/corpus_<name> seeded from the test fixtures when they
# are present.  Exits non-zero if any fuzzer finds a crash, leak or timeout
# (the reproducer is left in build/fuzz/).
# Usage: fuzz/run_fuzz.sh SECONDS BINARY...
set -u
secs=${1:-30}; shift
fx=${MC_FIXTURES:-../shared/fixtures}
status=0
for bin in "$@"; do
  name=$(basename "$bin")
  corpus=build/fuzz/corpus_$name
  mkdir -p "$corpus"
  case "$name" in
    fuzz_json)
      for f in "$fx"/models/*/config.json "$fx"/models/*/open_clip_config.json \
               "$fx"/datacompdr/teachers/*/open_clip_config.json "$fx"/images/index.json; do
        [ -f "$f" ] && cp -f "$f" "$corpus/seed_$(echo "$f" | tr '/' '_')"
      done ;;
    fuzz_checkpoint)
      shard="$fx/datacompdr/shards/00000000_bf16.tar"
      if [ -f "$shard" ]; then
        for m in $(tar -tf "$shard" | grep '\.pth\.gz$'); do
          tar -xOf "$shard" "$m" | gzip -dc > "$corpus/seed_${m%.gz}" 2>/dev/null || true
        done
      fi ;;
    fuzz_paug)
      shard="$fx/datacompdr/shards/00000000.tar"
      if [ -f "$shard" ]; then
        for m in $(tar -tf "$shard" | grep '\.paug\.json$'); do
          tar -xOf "$shard" "$m" > "$corpus/seed_$m" 2>/dev/null || true
        done
      fi
      printf '%s' '{"param_aug": [[[2, 3, 30, 40], [[5, 9.0], [9, 0.27]]], [[0, 0, 40, 48], [[1, -0.09], [8, 0.27]]]]}' \
        > "$corpus/seed_small" ;;
    fuzz_tar|fuzz_npz|fuzz_pthgz)
      for shard in "$fx"/datacompdr/shards/*.tar; do
        [ -f "$shard" ] || continue
        b=$(basename "$shard" .tar)
        case "$name" in
          fuzz_tar)   # a small shard: one sample without its image
            tmp=$(mktemp -d)
            ms=$(tar -tf "$shard" | grep '^000000000\.' | grep -v '\.jpg$')
            tar -C "$tmp" -xf "$shard" $ms && tar -C "$tmp" -cf "$corpus/seed_$b.tar" $ms
            rm -rf "$tmp" ;;
          fuzz_npz)
            for m in $(tar -tf "$shard" | grep '\.npz$'); do tar -xOf "$shard" "$m" > "$corpus/seed_$m"; done ;;
          fuzz_pthgz)
            for m in $(tar -tf "$shard" | grep '\.pth\.gz$'); do tar -xOf "$shard" "$m" > "$corpus/seed_$m"; done ;;
        esac
      done ;;
    fuzz_serve)   # first byte: 0 embeddings, 1 classify, 2 search
      printf '\000{"model": "m", "input": ["a cat", {"text": "b"}, {"image": "data:image/png;base64,iVBORw0KGgo="}]}' > "$corpus/seed_embed"
      printf '\001{"images": ["Zm9v"], "labels": ["cat", "dog"], "templates": ["a {}"], "top_k": 1}' > "$corpus/seed_classify"
      printf '\002{"text": "a dog", "k": 5}' > "$corpus/seed_search"
      [ -f "$fx/images/one_pixel.png" ] && { printf '\002{"image": "'; base64 -w0 "$fx/images/one_pixel.png"; printf '"}'; } \
        > "$corpus/seed_search_image" ;;
  esac
  echo "fuzzing $name for ${secs}s"
  (cd build/fuzz && "../../$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=0 "../../$corpus" \
      > "$name.log" 2>&1)
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "$name: FAILED (exit $rc), see build/fuzz/$name.log"; tail -n 30 "build/fuzz/$name.log"
    status=1
  else
    echo "$name: ok ($(grep -c . "build/fuzz/$name.log") log lines, corpus $(ls "$corpus" | wc -l) files)"
  fi
done
exit $status
