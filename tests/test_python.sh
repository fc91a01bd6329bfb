#!/usr/bin/env bash
# test_python.sh - the Python package's tests (python/tests, pytest) with
# Debian's python3 against build/libmobileclip.so.0 and build/mobileclip
# (made by 'make' first) and the fixtures.  Prints "test_python: N passed,
# N failed" for tests/run_tests.sh: pytest's failures and errors count as
# failures, and so do skips (a skipped check is not a pass), a missing pytest
# or NumPy, and a pytest run that fails without saying why.
set -u
root=$(pwd)
py=${MC_PYTHON:-/usr/bin/python3}
fail_with() { echo "FAIL: $1" >&2; echo "test_python: 0 passed, 1 failed"; exit 1; }
for m in pytest numpy PIL; do
  "$py" -c "import $m" 2>/dev/null || fail_with "$py cannot import $m: install python3-pytest, python3-numpy, python3-pil (tools/install-deps.sh)"
done
[ -e "$root/build/libmobileclip.so.0" ] && [ -x "$root/build/mobileclip" ] || fail_with "build/libmobileclip.so.0 or build/mobileclip missing: run make first"
out=$(MOBILECLIP_LIB="$root/build/libmobileclip.so.0" \
      MOBILECLIP_VOCAB="${MC_FIXTURES:-$root/../shared/fixtures}/tokenizer/bpe_simple_vocab_16e6.txt.gz" \
      PYTHONDONTWRITEBYTECODE=1 "$py" -m pytest -q -rfEs -p no:cacheprovider "$root/python/tests" 2>&1); rc=$?
printf '%s\n' "$out" | tail -n 25
last=$(printf '%s\n' "$out" | grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error)' | tail -n 1)
count() { printf '%s\n' "$last" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }
passed=$(count passed); failed=$(( $(count failed) + $(count errors?) + $(count skipped) + $(count xfailed) + $(count xpassed) ))
if [ $rc -ne 0 ] && [ $failed -eq 0 ]; then failed=1; echo "FAIL: pytest exited $rc" >&2; fi
[ "$passed" -gt 0 ] || { [ $failed -gt 0 ] || failed=1; echo "FAIL: no test passed" >&2; }
echo "test_python: $passed passed, $failed failed"
[ $failed -eq 0 ]
