#!/usr/bin/env bash
# test_install.sh - 'make install PREFIX=...' into a temporary prefix, then a
# program built against it through pkg-config, linked both with the shared
# library (versioned soname) and statically: it must embed an image exactly
# as 'mobileclip embed-image' does, and the shared library must export the
# functions of mobileclip.h and nothing else.  Run from the project root
# after the build (make test).
set -u
pass=0; fail=0
check() {   # check CONDITION-STATUS MESSAGE
  if [ "$1" = 0 ]; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $2" >&2; fi
}
root=$(pwd)
fx=${MC_FIXTURES:-$root/../shared/fixtures}
tmp=$(mktemp -d /tmp/mc_install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

make -s install PREFIX="$prefix" >"$tmp/install.log" 2>&1
check $? "make install PREFIX=$prefix: $(tail -3 "$tmp/install.log")"
version=$(sed -n 's/^#define MC_VERSION_STRING "\(.*\)"/\1/p' include/mobileclip.h)
major=${version%%.*}
for f in bin/mobileclip include/mobileclip.h lib/libmobileclip.a lib/libmobileclip.so \
         "lib/libmobileclip.so.$major" "lib/libmobileclip.so.$version" lib/pkgconfig/mobileclip.pc; do
  [ -e "$prefix/$f" ]; check $? "installed $f"
done
soname=$(readelf -d "$prefix/lib/libmobileclip.so.$version" 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libmobileclip.so.$major" ]; check $? "soname is libmobileclip.so.$major (got '$soname')"

# Exactly the public functions are exported.
grep -oE '\bmc_[a-z0-9_]+[[:space:]]*\(' include/mobileclip.h | sed -E 's/[[:space:]]*\($//' | sort -u > "$tmp/public"
nm -D --defined-only "$prefix/lib/libmobileclip.so" | awk '{print $3}' | grep -v '^$' | sort -u > "$tmp/exported"
cmp -s "$tmp/public" "$tmp/exported"
check $? "exported symbols = the header's functions ($(wc -l < "$tmp/public") declared, $(wc -l < "$tmp/exported") exported; extra: $(comm -13 "$tmp/public" "$tmp/exported" | head -5 | tr '\n' ' '))"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion mobileclip 2>/dev/null)" = "$version" ]; check $? "pkg-config --modversion mobileclip = $version"
cc -o "$tmp/demo_shared" tests/install_demo.c $(pkg-config --cflags --libs mobileclip) -Wl,-rpath,"$prefix/lib" 2>"$tmp/cc1.log"
check $? "build against the shared library: $(head -3 "$tmp/cc1.log")"
# static libmobileclip, its dependencies (Requires.private) shared as Debian ships them
cc -o "$tmp/demo_static" tests/install_demo.c $(pkg-config --cflags mobileclip) "$prefix/lib/libmobileclip.a" \
   $(pkg-config --libs $(pkg-config --print-requires-private mobileclip)) -lm -lpthread -fopenmp 2>"$tmp/cc2.log"
check $? "build against the static library: $(head -3 "$tmp/cc2.log")"
ldd "$tmp/demo_shared" 2>/dev/null | grep -q "libmobileclip.so.$major => $prefix/lib"
check $? "the program loads the installed libmobileclip.so.$major"

model=$fx/models/oc_mobileclip2_s0
img=$fx/images/chelsea.png
MOBILECLIP_VOCAB=$fx/tokenizer/bpe_simple_vocab_16e6.txt.gz "$prefix/bin/mobileclip" embed-image -m "$model" \
  -o "$tmp/cli.npy" "$img" >/dev/null 2>"$tmp/cli.log"
check $? "installed CLI embeds: $(tail -2 "$tmp/cli.log")"
for kind in shared static; do
  "$tmp/demo_$kind" "$model" "$img" "$tmp/$kind.npy" >"$tmp/$kind.log" 2>&1
  check $? "$kind demo runs: $(tail -2 "$tmp/$kind.log")"
  cmp -s "$tmp/cli.npy" "$tmp/$kind.npy"; check $? "$kind demo's embedding is byte-identical to the CLI's"
done
echo "test_install: $pass passed, $fail failed"
[ $fail -eq 0 ]
