# mobileclip.c build.
#   make            libraries build/libmobileclip.a, build/libmobileclip.so (soname .so.MAJOR,
#                   only mobileclip.h's functions exported) and the CLI build/mobileclip
#   make install    PREFIX=/usr/local: CLI, header, both libraries, lib/pkgconfig/mobileclip.pc
#   make test       every test (fixture parity, kernels, hostile files under ASan/UBSan,
#                   and on x86 with the cross tools the NEON kernels under QEMU)
#   make fuzz       bounded fuzzing of the parsers (clang libFuzzer; FUZZ_SECONDS per target)
#   make fuzz-long  the same for FUZZ_LONG_SECONDS (default 3600) per target
#                   (FUZZ_JOBS=N runs N targets at once; default 1)
#   make bench      the benchmark figures
#   make bench-kernels  kernel GFLOP/s (ours vs scalar vs OpenBLAS with BLAS=openblas)
#   make bench-peers    against ONNX Runtime and PyTorch on the same machine (REF=ml-mobileclip)
#   make bench-train-peers  training steps against PyTorch on the same machine (REF=ml-mobileclip)
#   make bench-augment  DataCompDR augmentation re-application against Pillow + torchvision (REF=ml-mobileclip)
#   make cross-neon-test  the AArch64 NEON kernel set's tests, cross-compiled and run under QEMU
#   make check-layers   includes and calls only downward between the src/ layers (docs/architecture.md)
#   make tsan-test      the threaded tests under ThreadSanitizer (also part of make test)
# Switches: OPENMP=0|1 (default 1), BLAS=openblas (default none), CUDA=1, MPI=0|1 (default: 1 when
# the MPI development files are found), DEBUG=1.

CC      ?= gcc
OPENMP  ?= 1
BLAS    ?=
PREFIX  ?= /usr/local
SHAREDIR ?= $(PREFIX)/share/mobileclip

B := build
# 'make' alone builds everything (the first rule below is a helper's).
.DEFAULT_GOAL := all
PKGS := libpng libjpeg zlib libutf8proc libpcre2-8 libwebp libwebpdemux libcurl sqlite3 libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT ?= -O2
ifdef DEBUG
OPT := -O0
endif
CFLAGS_BASE := -std=gnu11 $(OPT) -g -Wall -Wextra -Werror=implicit-function-declaration -Wno-unused-parameter -Wshadow -fno-strict-aliasing \
               -Iinclude -Isrc $(PKG_CFLAGS) -DMC_SHARE_DIR='"$(SHAREDIR)"'
LIBS := $(PKG_LIBS) -lm -lpthread
ifeq ($(OPENMP),1)
CFLAGS_BASE += -fopenmp
LIBS += -fopenmp
endif
ifeq ($(BLAS),openblas)
CFLAGS_BASE += -DMC_USE_OPENBLAS $(shell pkg-config --cflags openblas 2>/dev/null)
LIBS += $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
endif
# MPI (src/dist/): on when the MPI development files are found (Open MPI's mpi-c or MPICH's
# mpich pkg-config module); MPI=0 turns it off, MPI=1 insists.
MPI_PC := $(shell pkg-config --exists mpi-c 2>/dev/null && echo mpi-c || { pkg-config --exists mpich 2>/dev/null && echo mpich; })
ifeq ($(origin MPI),undefined)
MPI := $(if $(MPI_PC),1,0)
endif
ifeq ($(MPI),1)
ifeq ($(MPI_PC),)
$(error MPI=1 but no MPI development files (pkg-config mpi-c or mpich); install libopenmpi-dev or libmpich-dev)
endif
CFLAGS_BASE += -DMC_HAVE_MPI $(shell pkg-config --cflags $(MPI_PC))
LIBS += $(shell pkg-config --libs $(MPI_PC))
endif
CFLAGS := $(CFLAGS_BASE) $(EXTRA_CFLAGS)

# SIMD kernels are compiled per file with their own target flags and picked at run time.
SIMD_FLAGS_avx2   := -mavx2 -mfma -mf16c
SIMD_FLAGS_avx512 := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c

LIB_SRC  := $(sort $(wildcard src/*/*.c))
# The x86 SIMD files only on x86 (kernels/set_neon.c is empty off AArch64).
HOST_ARCH := $(shell $(CC) -dumpmachine 2>/dev/null)
ifneq ($(filter aarch64% arm%,$(HOST_ARCH)),)
LIB_SRC  := $(filter-out %_avx2.c %_avx512.c,$(LIB_SRC))
endif
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TESTS    := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRC))

LIB_HDR  := $(wildcard include/*.h src/*/*.h)

define obj_rule
$(1)/%.o: src/%.c $$(LIB_HDR)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $(2) $$(if $$(findstring _avx512,$$*),$$(SIMD_FLAGS_avx512),$$(if $$(findstring _avx2,$$*),$$(SIMD_FLAGS_avx2))) -c $$< -o $$@
endef

LIB_OBJ := $(patsubst src/%.c,$(B)/obj/%.o,$(LIB_SRC))
$(eval $(call obj_rule,$(B)/obj,))
# The web page is assembled into serve/page.o (.incbin): every build of it depends on the page.
$(B)/obj/serve/page.o $(B)/pic/serve/page.o $(B)/san/obj/serve/page.o $(B)/tsan/obj/serve/page.o \
  $(B)/fuzz/obj/serve/page.o: src/serve/page.html

# The shared library: position-independent objects of their own (the static
# library and the CLI keep the position-dependent ones), a versioned soname,
# and only the functions of include/mobileclip.h exported (a version script
# made from the header).
SO_VERSION := $(shell sed -n 's/^\#define MC_VERSION_STRING "\(.*\)"/\1/p' include/mobileclip.h)
SO_MAJOR   := $(firstword $(subst ., ,$(SO_VERSION)))
PIC_OBJ := $(patsubst src/%.c,$(B)/pic/%.o,$(LIB_SRC))
$(eval $(call obj_rule,$(B)/pic,-fPIC))
$(B)/mobileclip.map: include/mobileclip.h
	@mkdir -p $(B)
	{ echo '{ global:'; grep -oE '\bmc_[a-z0-9_]+[[:space:]]*\(' $< | sed -E 's/[[:space:]]*\($$/;/' | sort -u; \
	  echo 'local: *; };'; } > $@
$(B)/libmobileclip.so.$(SO_VERSION): $(PIC_OBJ) $(B)/mobileclip.map
	$(CC) -shared -Wl,-soname,libmobileclip.so.$(SO_MAJOR) -Wl,--version-script=$(B)/mobileclip.map \
	  -Wl,--no-undefined -o $@ $(PIC_OBJ) $(LIBS)
$(B)/libmobileclip.so: $(B)/libmobileclip.so.$(SO_VERSION)
	ln -sf libmobileclip.so.$(SO_VERSION) $(B)/libmobileclip.so.$(SO_MAJOR)
	ln -sf libmobileclip.so.$(SO_VERSION) $@

all: $(B)/libmobileclip.a $(B)/libmobileclip.so $(B)/mobileclip

$(B)/obj $(B)/cli $(B)/tests $(B)/san $(B)/fuzz:
	mkdir -p $@

$(B)/libmobileclip.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

# The CLI includes library headers from src/ (train/trainer.h, ...): a struct there that
# changes must rebuild the commands too.
$(B)/cli/%.o: cli/%.c $(wildcard cli/*.h) $(LIB_HDR) | $(B)/cli
	$(CC) $(CFLAGS) -Icli -c $< -o $@

$(B)/mobileclip: $(patsubst cli/%.c,$(B)/cli/%.o,$(CLI_SRC)) $(B)/libmobileclip.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

# Test-only kernel sets (never in the library): the AVX-512 source built over
# the portable emulation of its intrinsics (src/kernels/emu512.h), so that it runs
# against the scalar oracle on machines without AVX-512.  AVX2 flags because
# the set takes its other kernels from the AVX2 set anyway (fmaf inlines);
# -Wno-psabi: 64-byte vector arguments of static functions, no ABI involved.
EMU_FLAGS := -DMC_EMULATE_AVX512 $(SIMD_FLAGS_avx2) -Wno-psabi
$(B)/testsets/set_avx512_emu.o: src/kernels/set_avx512.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EMU_FLAGS) -c $< -o $@
$(B)/libmc_testsets.a: $(B)/testsets/set_avx512_emu.o
	rm -f $@ && ar rcs $@ $^

# The emulated operations against the real AVX2 ones: no contraction of its
# separate multiplies and adds (private: not passed on to prerequisites).
$(B)/tests/test_emu512: private CFLAGS += -Wno-psabi -ffp-contract=off

# Allocation-failure test: every allocation of the library goes through the test's counter.
WRAP_ALLOC := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=posix_memalign,--wrap=strdup
$(B)/tests/test_alloc_fail $(B)/san/test_alloc_fail: private CFLAGS += $(WRAP_ALLOC)

$(B)/tests/%: tests/%.c $(wildcard tests/*.h) $(B)/libmc_testsets.a $(B)/libmobileclip.a | $(B)/tests
	$(CC) $(CFLAGS) -Itests -o $@ $< $(B)/libmc_testsets.a $(B)/libmobileclip.a $(LIBS)

# Sanitizer build of the library and of the parser tests (ASan + UBSan).
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SAN_TESTS_SRC := $(filter tests/test_json.c tests/test_checkpoint.c tests/test_hostile.c tests/test_tokenizer.c tests/test_image.c tests/test_augment.c tests/test_shard.c tests/test_loader.c tests/test_run.c tests/test_report.c tests/test_alloc_fail.c tests/test_npy.c tests/test_kernels.c tests/test_train_kernels.c tests/test_torchsave.c tests/test_eval.c tests/test_search.c tests/test_serve.c,$(TEST_SRC))
SAN_TESTS := $(patsubst tests/%.c,$(B)/san/%,$(SAN_TESTS_SRC))
# The fuzz targets (fuzz/) and, built from them without libFuzzer, their
# regression inputs' replays (fuzz/replay.c over fuzz/regressions/<target>/).
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(patsubst fuzz/%.c,$(B)/fuzz/%,$(FUZZ_SRC))
FUZZ_REPLAY := $(patsubst fuzz/%.c,$(B)/san/replay_%,$(FUZZ_SRC))
SAN_OBJ := $(patsubst src/%.c,$(B)/san/obj/%.o,$(LIB_SRC))
$(B)/san/obj/%.o: src/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN_FLAGS) $(if $(findstring _avx512,$*),$(SIMD_FLAGS_avx512),$(if $(findstring _avx2,$*),$(SIMD_FLAGS_avx2))) -c $< -o $@
$(B)/san/libmobileclip.a: $(SAN_OBJ)
	rm -f $@ && ar rcs $@ $^
$(B)/san/testsets/set_avx512_emu.o: src/kernels/set_avx512.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN_FLAGS) $(EMU_FLAGS) -c $< -o $@
$(B)/san/libmc_testsets.a: $(B)/san/testsets/set_avx512_emu.o
	rm -f $@ && ar rcs $@ $^
$(B)/san/%: tests/%.c $(wildcard tests/*.h) $(B)/san/libmc_testsets.a $(B)/san/libmobileclip.a | $(B)/san
	$(CC) $(CFLAGS) $(SAN_FLAGS) -Itests -o $@ $< $(B)/san/libmc_testsets.a $(B)/san/libmobileclip.a $(LIBS)
$(B)/san/replay_%: fuzz/%.c fuzz/replay.c tests/test.h $(B)/san/libmobileclip.a | $(B)/san
	$(CC) $(CFLAGS) $(SAN_FLAGS) -Itests -DFUZZ_TARGET='"$*"' -o $@ fuzz/replay.c $< $(B)/san/libmobileclip.a $(LIBS)

# ThreadSanitizer build of the tests of threaded code: the loader's reader,
# workers and consumer, and several contexts sharing one model.  The library
# without OpenMP (its runtime is not instrumented) and without the SIMD files.
TSAN_FLAGS := -std=gnu11 -O1 -g -fsanitize=thread -Wall -Wno-unknown-pragmas -Wno-unused-variable -DMC_NO_SIMD \
              -Iinclude -Isrc $(PKG_CFLAGS) -DMC_SHARE_DIR='"$(SHAREDIR)"'
TSAN_OBJ   := $(patsubst src/%.c,$(B)/tsan/obj/%.o,$(filter-out %_avx2.c %_avx512.c,$(LIB_SRC)))
TSAN_TESTS := $(B)/tsan/test_loader $(B)/tsan/test_threads $(B)/tsan/test_search
$(B)/tsan/obj/%.o: src/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_FLAGS) -c $< -o $@
$(B)/tsan/libmobileclip.a: $(TSAN_OBJ)
	rm -f $@ && ar rcs $@ $^
$(B)/tsan/%: tests/%.c $(wildcard tests/*.h) $(B)/tsan/libmobileclip.a
	$(CC) $(TSAN_FLAGS) -Itests -o $@ $< $(B)/tsan/libmobileclip.a $(PKG_LIBS) -lm -lpthread
# The CLI under ThreadSanitizer, for its folder-embedding decode threads and workers.
$(B)/tsan/mobileclip: $(CLI_SRC) $(wildcard cli/*.h) $(B)/tsan/libmobileclip.a
	$(CC) $(TSAN_FLAGS) -Icli -o $@ $(CLI_SRC) $(B)/tsan/libmobileclip.a $(PKG_LIBS) -lm -lpthread
TSAN_CLI_TEST := tests/test_tsan_cli.sh
tsan-test: $(TSAN_TESTS) $(B)/tsan/mobileclip
	@bash tests/run_tests.sh -- -- $(TSAN_TESTS) $(TSAN_CLI_TEST)

# The NEON kernel set checked on an x86 host: the kernel sources (those the
# kernel tests link, no external libraries) cross-compiled for AArch64 and the
# kernel tests run under QEMU user-mode against the scalar oracle, 1 and 2
# threads.  Needs gcc-aarch64-linux-gnu and qemu-user (tools/install-deps.sh);
# `make test` includes them when both are installed (CROSS_NEON=0: never).
CROSS_CC  ?= aarch64-linux-gnu-gcc
CROSS_RUN ?= qemu-aarch64 -L /usr/aarch64-linux-gnu
XB := $(B)/aarch64
CROSS_CFLAGS := -std=gnu11 -O2 -Wall -Wextra -Wno-unused-parameter -Wshadow -fno-strict-aliasing -fopenmp \
                -Iinclude -Isrc -DMC_SHARE_DIR='"$(SHAREDIR)"'
CROSS_SRC := $(filter-out %_avx2.c %_avx512.c,$(wildcard src/core/*.c src/kernels/*.c)) \
             src/train/kernels.c src/train/kernels_ref.c
CROSS_TESTS := $(patsubst %,$(XB)/%-aarch64-qemu,test_kernels test_train_kernels)
$(XB)/obj $(XB)/bin:
	mkdir -p $@
$(XB)/obj/%.o: src/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CROSS_CC) $(CROSS_CFLAGS) -c $< -o $@
$(XB)/libmc_kernels.a: $(patsubst src/%.c,$(XB)/obj/%.o,$(CROSS_SRC))
	rm -f $@ && ar rcs $@ $^
$(XB)/bin/%: tests/%.c tests/test.h $(XB)/libmc_kernels.a | $(XB)/bin
	$(CROSS_CC) $(CROSS_CFLAGS) -Itests -o $@ $< $(XB)/libmc_kernels.a -lm
# run_tests.sh takes programs: each is a script running its binary under QEMU
$(XB)/%-aarch64-qemu: $(XB)/bin/%
	printf '#!/bin/sh\nexec $(CROSS_RUN) %s "$$@"\n' "$(abspath $<)" > $@ && chmod +x $@
cross-neon-test: $(CROSS_TESTS)
	@bash tests/run_tests.sh $^
ifndef CROSS_NEON
CROSS_NEON := $(if $(and $(filter x86_64%,$(HOST_ARCH)),$(shell command -v $(CROSS_CC) 2>/dev/null),\
                $(shell command -v $(firstword $(CROSS_RUN)) 2>/dev/null)),1,0)
endif
TEST_CROSS := $(if $(filter 1,$(CROSS_NEON)),$(CROSS_TESTS))

# The benchmark programs are built with the tests so that they keep compiling.
tests: $(TESTS) $(TEST_CROSS) $(SAN_TESTS) $(FUZZ_REPLAY) $(TSAN_TESTS) $(B)/tsan/mobileclip $(B)/libmobileclip.so $(B)/mobileclip $(B)/bench_kernels $(B)/bench_augment $(B)/bench_caption $(B)/peer_ours $(B)/serve_load

# Data-parallel training under mpirun (needs the MPI build).
TEST_MPI := $(if $(filter 1,$(MPI)),tests/test_train_mpi.sh)

test: tests
	@$(if $(TEST_CROSS),,echo "note: NEON cross test skipped (CROSS_NEON=0, not x86, or no $(CROSS_CC) / qemu-aarch64)")
	@$(if $(TEST_MPI),,echo "note: MPI test skipped (built with MPI=0 or without MPI development files)")
	@bash tests/run_tests.sh $(TESTS) $(TEST_CROSS) tests/test_layers.py tests/test_dr_oracle.py tests/test_convert_pt.py tests/test_eval.py tests/test_reinforce.py tests/test_install.sh tests/test_python.sh tests/test_train_cli.sh tests/test_crash_writes.sh tests/test_report.sh tests/test_index.sh tests/test_serve.py $(TEST_MPI) -- $(SAN_TESTS) $(FUZZ_REPLAY) -- $(TSAN_TESTS) $(TSAN_CLI_TEST)

# The architecture: includes and calls only downward between src/ layers, no circles.
check-layers: $(LIB_OBJ)
	@python3 tools/check_layers.py --objects $(B)/obj

# Fuzzing: clang's libFuzzer over the parsers of outside input, FUZZ_SECONDS
# each (make fuzz, bounded) or FUZZ_LONG_SECONDS each (make fuzz-long, an hour
# by default); both print executions and coverage per target.  The library is
# compiled once for all targets (fuzzer-no-link: coverage, no libFuzzer main).
FUZZ_SECONDS ?= 30
FUZZ_LONG_SECONDS ?= 3600
FUZZ_JOBS ?= 1
FUZZ_FLAGS := -std=gnu11 -O1 -g -fsanitize=address,undefined -Werror=implicit-function-declaration -DMC_NO_SIMD \
              -Iinclude -Isrc $(PKG_CFLAGS) -DMC_SHARE_DIR='"$(SHAREDIR)"'
FUZZ_OBJ := $(patsubst src/%.c,$(B)/fuzz/obj/%.o,$(filter-out %_avx2.c %_avx512.c,$(LIB_SRC)))
$(B)/fuzz/obj/%.o: src/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(B)/fuzz/libmobileclip.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^
$(B)/fuzz/%: fuzz/%.c $(B)/fuzz/libmobileclip.a | $(B)/fuzz
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(B)/fuzz/libmobileclip.a $(PKG_LIBS) -lm -lpthread
fuzz: $(FUZZ_BIN)
	@FUZZ_JOBS=$(FUZZ_JOBS) bash fuzz/run_fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BIN)
fuzz-long: $(FUZZ_BIN)
	@FUZZ_JOBS=$(FUZZ_JOBS) bash fuzz/run_fuzz.sh $(FUZZ_LONG_SECONDS) $(FUZZ_BIN)

bench: $(B)/mobileclip
	@bash bench/run_bench.sh

# Kernel benchmark (GFLOP/s per shape); with BLAS=openblas B=build-blas it also times OpenBLAS.
$(B)/bench_kernels: bench/bench_kernels.c $(B)/libmobileclip.a
	$(CC) $(CFLAGS) -o $@ $< $(B)/libmobileclip.a $(LIBS)
bench-kernels: $(B)/bench_kernels
	$(B)/bench_kernels $(BENCH_THREADS)

# Caption generation: ms per token with and without the decoders' KV cache
# (CAPTIONER=folder; a full-size random coca_ViT-L-14: tools/random_coca.py).
$(B)/bench_caption: bench/bench_caption.c $(B)/libmobileclip.a
	$(CC) $(CFLAGS) -o $@ $< $(B)/libmobileclip.a $(LIBS)
CAPTIONER ?= ../shared/fixtures/datacompdr/captioner
bench-caption: $(B)/bench_caption
	$(B)/bench_caption $(CAPTIONER) 30 1 3

# Decode + re-application of stored DataCompDR augmentations, against Pillow + torchvision
# running Apple's transforms.py on the same shard (REF=checkout of apple/ml-mobileclip,
# SHARD=..., SIZE=256; PYTHON with torch, torchvision, Pillow: Debian's /usr/bin/python3).
$(B)/bench_augment: bench/bench_augment.c $(B)/libmobileclip.a
	$(CC) $(CFLAGS) -o $@ $< $(B)/libmobileclip.a $(LIBS)
AUG_SHARD ?= ../shared/fixtures/datacompdr/shards/00000000.tar
AUG_SIZE ?= 256
bench-augment: $(B)/bench_augment
	@: $${REF:?set REF to a checkout of apple/ml-mobileclip}
	@for round in 1 2 3; do \
	  $(B)/bench_augment $(AUG_SHARD) $(AUG_SIZE) 3; \
	  $${PYTHON:-/usr/bin/python3} bench/reference/time_reapply.py $$REF $(AUG_SHARD) $(AUG_SIZE) 3; \
	done

# Loopback load test of 'mobileclip serve' (bench/serve_load.c, a plain HTTP client):
# bench/run_serve_load.sh starts a server and prints requests/s, p50/p99 latency and memory.
$(B)/serve_load: bench/serve_load.c
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Wshadow -o $@ $< -lpthread
bench-serve: $(B)/mobileclip $(B)/serve_load
	@bash bench/run_serve_load.sh

# Same machine, same run: us against ONNX Runtime and PyTorch on the reference's own model
# (bench/reference/README.md; REF=checkout of apple/ml-mobileclip).
$(B)/peer_ours: bench/reference/peer_ours.c $(B)/libmobileclip.a
	$(CC) $(CFLAGS) -o $@ $< $(B)/libmobileclip.a $(LIBS)
bench-peers: $(B)/peer_ours
	@bash bench/reference/compare.sh

# Training steps (bench-train) against PyTorch running the reference training
# step, alternating in rounds: REF=ml-mobileclip MODELS="mobileclip_s0 mobileclip_b"
# BATCH=8 THREADS=2 ROUNDS=3 (bench/reference/README.md).
bench-train-peers: $(B)/mobileclip
	@bash bench/reference/compare_train.sh

# make install PREFIX=... [DESTDIR=...]: the CLI, the header, the static and
# shared libraries and a pkg-config file (pkg-config --cflags --libs mobileclip).
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(SHAREDIR)
	install -m 755 $(B)/mobileclip $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(B)/libmobileclip.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(B)/libmobileclip.so.$(SO_VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libmobileclip.so.$(SO_VERSION) $(DESTDIR)$(PREFIX)/lib/libmobileclip.so.$(SO_MAJOR)
	ln -sf libmobileclip.so.$(SO_VERSION) $(DESTDIR)$(PREFIX)/lib/libmobileclip.so
	install -m 644 include/mobileclip.h $(DESTDIR)$(PREFIX)/include/
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: mobileclip' 'Description: MobileCLIP and MobileCLIP2 image-text models in C' \
	  'Version: $(SO_VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lmobileclip' \
	  'Requires.private: $(PKGS) $(if $(filter 1,$(MPI)),$(MPI_PC))' 'Libs.private: -lm -lpthread $(if $(filter 1,$(OPENMP)),-fopenmp)' \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/mobileclip.pc

clean:
	rm -rf $(B)

.PHONY: all test tests tsan-test check-layers fuzz fuzz-long bench bench-serve bench-kernels bench-augment bench-caption bench-peers bench-train-peers cross-neon-test install clean
.SECONDARY:
