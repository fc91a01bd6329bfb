#!/usr/bin/env bash
# Runs test programs, each printing "name: N passed, N failed" as its last
# line, and prints the total.  Arguments: optimized tests, "--", ASan/UBSan
# tests, "--", ThreadSanitizer tests (a reported race fails the test).
set -u
pass=0; fail=0; broken=0
san=0
for t in "$@"; do
  if [ "$t" = "--" ]; then san=$((san+1)); continue; fi
  label=$(basename "$t"); [ $san = 1 ] && label="$label (asan+ubsan)"; [ $san = 2 ] && label="$label (tsan)"
  out=$(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        TSAN_OPTIONS=halt_on_error=0:exitcode=66 "$t" 2>&1); rc=$?
  line=$(printf '%s\n' "$out" | grep -E '^[a-z_0-9]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  if [ -z "$line" ] || [ $rc -ne 0 ]; then
    printf '%s\n' "$out" | tail -n 40
  fi
  if [ -z "$line" ]; then
    echo "$label: crashed or printed no summary (exit $rc)"; broken=$((broken+1)); fail=$((fail+1)); continue
  fi
  p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')
  f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')
  if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi
  pass=$((pass+p)); fail=$((fail+f))
  echo "$label: $p passed, $f failed"
done
echo "total: $pass passed, $fail failed"
[ $fail -eq 0 ]
