# libinternlm -- plain Makefile.
#
#   make                  library (lib/), CLI (build/internlm)
#   make test             build and run every test suite (installs missing packages)
#   make demo             the main job on a built-in default (installs missing packages)
#   make bench            benchmarks (GEMM against the measured peak)
#   make asan             tests under AddressSanitizer + UBSan (in build/asan)
#   make tsan             the threaded suites under ThreadSanitizer (clang, build/tsan)
#   make fuzz             libFuzzer harnesses (clang), FUZZ_SECONDS each (docs/reliability.md)
#   make fuzz-regress     every harness once over tests/fuzz/regress/
#   make install PREFIX=/usr/local
#   make config           what was detected
#
# Options: CUDA=0 (no CUDA backend even when nvcc exists), MPI=0, BUILD=dir,
# LIBDIR=dir, SANITIZE=1.

VERSION_MAJOR := $(shell sed -n 's/^\#define ILM_VERSION_MAJOR \([0-9]*\)/\1/p' include/internlm.h)
VERSION_MINOR := $(shell sed -n 's/^\#define ILM_VERSION_MINOR \([0-9]*\)/\1/p' include/internlm.h)
VERSION_PATCH := $(shell sed -n 's/^\#define ILM_VERSION_PATCH \([0-9]*\)/\1/p' include/internlm.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX  ?= /usr/local
BUILD   ?= build
LIBDIR  ?= lib
CC      ?= cc
CXX     ?= c++
PKG_CONFIG ?= pkg-config

# ---- detection -------------------------------------------------------------

NVCC := $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
CUDA ?= $(if $(NVCC),1,0)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
MPI  ?= $(shell $(PKG_CONFIG) --exists ompi-c 2>/dev/null && echo 1 || echo 0)

BLAS_CFLAGS := $(shell $(PKG_CONFIG) --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(or $(shell $(PKG_CONFIG) --libs openblas 2>/dev/null),-lopenblas)
JSON_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcjson 2>/dev/null)
JSON_LIBS   := $(or $(shell $(PKG_CONFIG) --libs libcjson 2>/dev/null),-lcjson)
PCRE_CFLAGS := $(shell $(PKG_CONFIG) --cflags libpcre2-8 2>/dev/null)
PCRE_LIBS   := $(or $(shell $(PKG_CONFIG) --libs libpcre2-8 2>/dev/null),-lpcre2-8)
UTF8PROC_LIBS := $(or $(shell $(PKG_CONFIG) --libs libutf8proc 2>/dev/null),-lutf8proc)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(or $(shell $(PKG_CONFIG) --libs check 2>/dev/null),-lcheck -lsubunit -lrt -lm -lpthread)

# ---- flags -----------------------------------------------------------------

OPT      ?= -O2 -g
WARN     := -Wall -Wextra -Werror
CPPFLAGS += -Iinclude -Isrc -D_GNU_SOURCE $(BLAS_CFLAGS) $(JSON_CFLAGS) $(PCRE_CFLAGS)
# No FMA contraction the source does not write: the kernels promise equal
# bits between paths (e.g. four-row and one-row dot products), whichever
# compiler builds them (gcc in C11 mode does not contract; clang would).
CFLAGS   += -std=c11 $(WARN) $(OPT) -ffp-contract=off -fPIC -fvisibility=hidden -fopenmp
LDLIBS   := $(BLAS_LIBS) $(JSON_LIBS) $(PCRE_LIBS) $(UTF8PROC_LIBS) -lz -lm -lpthread

ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
NO_UNDEFINED := -Wl,--no-undefined
ifeq ($(SANITIZE),thread)
CFLAGS  += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
# clang leaves the TSan runtime to the executable that loads the library.
NO_UNDEFINED :=
endif

LIB_SRC := $(wildcard src/core/*.c src/tensor/*.c src/backend/*.c src/backend/cpu/*.c \
                     src/formats/*.c src/tokenizer/*.c src/corpus/*.c src/model/*.c src/quant/*.c \
                     src/infer/*.c src/train/*.c src/eval/*.c src/bench/*.c)
CPU_LIB_SRC := $(LIB_SRC)
CU_SRC  :=
ifeq ($(CUDA),1)
LIB_SRC := $(filter-out src/backend/nocuda.c,$(LIB_SRC))
CU_SRC  := $(wildcard src/backend/cuda/*.cu)
CPPFLAGS += -DILM_HAVE_CUDA
# Hopper (sm_90, the H100/H200 we test on) and Ampere, plus PTX for newer GPUs.
NVCCFLAGS ?= -O2 -std=c++17 -gencode arch=compute_80,code=sm_80 \
             -gencode arch=compute_90,code=[sm_90,compute_90]
LDLIBS  += -L$(CUDA_HOME)/lib64 -lcudart -lcublas -lcublasLt -lnccl -lstdc++
endif
ifeq ($(MPI),1)
# MPI is detected here; src/comm/ (the MPI and NCCL collectives) will use
# these flags.  Nothing links it until that code exists.
MPI_CFLAGS := $(shell $(PKG_CONFIG) --cflags ompi-c)
MPI_LIBS   := $(shell $(PKG_CONFIG) --libs ompi-c)
endif

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(CU_SRC:%.cu=$(BUILD)/obj/%.o)
CLI_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/cli/*.c))
TEST_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/*.c))

SONAME  := libinternlm.so.$(VERSION_MAJOR)
SHARED  := $(LIBDIR)/libinternlm.so.$(VERSION)
STATIC  := $(LIBDIR)/libinternlm.a
CLI     := $(BUILD)/internlm
RUNNER  := $(BUILD)/test_runner

.PHONY: FORCE all test demo bench asan tsan fuzz fuzz-build fuzz-seeds fuzz-regress install uninstall config clean deps
all: $(SHARED) $(STATIC) $(CLI)

# ---- build rules -----------------------------------------------------------

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DILM_BUILDING_LIBRARY $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(filter-out $(BLAS_CFLAGS),$(CPPFLAGS)) -DILM_BUILDING_LIBRARY $(NVCCFLAGS) \
	    -Xcompiler -fPIC,-fvisibility=hidden,-Wall -c $< -o $@

$(SHARED): $(LIB_OBJ) src/internlm.map
	@mkdir -p $(LIBDIR)
	$(CC) -shared -fopenmp $(LDFLAGS) -Wl,-soname,$(SONAME) \
	    -Wl,--version-script=src/internlm.map $(NO_UNDEFINED) \
	    -o $@ $(LIB_OBJ) $(LDLIBS)
	ln -sf libinternlm.so.$(VERSION) $(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(LIBDIR)/libinternlm.so

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(LIBDIR)
	rm -f $@
	ar rcs $@ $^

# The CLI uses the public API only and finds the library next to it, both in
# the build tree (build/../lib, or lib/ below BUILD) and when installed.
$(CLI): $(CLI_OBJ) $(SHARED)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) -L$(LIBDIR) -linternlm $(JSON_LIBS) -lm \
	    -Wl,-rpath,'$$ORIGIN/../lib' -Wl,-rpath,'$$ORIGIN/lib'

# Tests link the static library, so they can reach internal ilm__ functions.
$(RUNNER): $(TEST_OBJ) $(STATIC)
	$(CC) -fopenmp $(LDFLAGS) -o $@ $(TEST_OBJ) $(STATIC) $(CHECK_LIBS) $(LDLIBS)

$(TEST_OBJ): CPPFLAGS += $(CHECK_CFLAGS)

# A development benchmark of the linear kernel (internal API, static link).
$(BUILD)/bench_linear: tools/bench_linear.c $(STATIC)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

# A development benchmark of the fp32 GEMM against OpenBLAS's threads.
$(BUILD)/bench_gemm: tools/bench_gemm.c $(STATIC)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

# A development benchmark of MinHash dedup, run by tools/bench_dedup.py.
$(BUILD)/bench_dedup: tools/bench_dedup.c $(STATIC)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)

# ---- user-facing targets ---------------------------------------------------

deps:
	@tools/deps.sh

# The tests run from the repository root; they find the build through these
# variables.  The runner's summary line (passed, failed, skipped) is last.
test: deps
	@$(MAKE) --no-print-directory all $(RUNNER)
	ILM_BUILD=$(BUILD) ILM_LIBDIR=$(LIBDIR) ILM_CUDA=$(CUDA) ILM_SANITIZE=$(SANITIZE) $(RUNNER)

asan:
	@$(MAKE) --no-print-directory test BUILD=build/asan LIBDIR=build/asan/lib SANITIZE=1 CUDA=0 OPT="-O1 -g"

# ThreadSanitizer over the suites that run threads against each other
# (sessions and a trainer at once; the ops and their thread teams), built
# with clang, whose OpenMP runtime reports its synchronization to TSan
# through the Archer tool (libomp-dev).
TSAN_SUITES ?= train:concurrency backend tensor grad
ARCHER ?= $(firstword $(wildcard /usr/lib/llvm-*/lib/libarcher.so))
tsan: deps
	@$(MAKE) --no-print-directory all build/tsan/test_runner CC=clang BUILD=build/tsan LIBDIR=build/tsan/lib \
	    SANITIZE=thread CUDA=0 OPT="-O1 -g"
	@set -e; for s in $(TSAN_SUITES); do \
	    echo "tsan: $$s"; \
	    case $$s in *:*) export CK_RUN_CASE=$${s#*:};; *) unset CK_RUN_CASE;; esac; \
	    OMP_TOOL_LIBRARIES=$(ARCHER) TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1" \
	    CK_RUN_SUITE=$${s%%:*} ILM_BUILD=build/tsan ILM_LIBDIR=build/tsan/lib ILM_CUDA=0 \
	    ILM_SANITIZE=thread build/tsan/test_runner; done
# ---- fuzzing ------------------------------------------------------------------
# libFuzzer harnesses over the public API (tests/fuzz/, docs/reliability.md).
# The library is rebuilt with clang and ASan + UBSan in build/fuzz (CPU only);
# each harness runs FUZZ_SECONDS over its corpus (build/fuzz/corpus/<h>, grown
# by the run), its seeds (build/fuzz/seeds/<h>, made by tests/fuzz/seeds.sh
# from the fixtures) and its regression inputs; crashes go to
# build/fuzz/crashes/<h>/.  FUZZ=name runs one harness.

FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_ABS     := $(CURDIR)/$(FUZZ_BUILD)
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   ?=
FUZZ_ALL     := gguf safetensors hf_config spm tokenizer_json tokenize chat configs corpus ckpt eval \
                adapter
FUZZ         ?= $(FUZZ_ALL)
# Pointer-overflow and nonnull reports are recoverable so that tests/fuzz/ubsan.supp can
# silence the known ones; halt_on_error stops the run at any other.
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fsanitize-recover=pointer-overflow,nonnull-attribute -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -Wall -Wextra -Werror -O1 -g -fopenmp $(FUZZ_SAN)
FUZZ_CPPFLAGS := $(filter-out -DILM_HAVE_CUDA,$(CPPFLAGS))
FUZZ_LIB_OBJ := $(CPU_LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_LIB     := $(FUZZ_BUILD)/libinternlm.a
FUZZ_LDLIBS  := $(BLAS_LIBS) $(JSON_LIBS) $(PCRE_LIBS) $(UTF8PROC_LIBS) -lz -lm -lpthread
FUZZ_BINS    := $(FUZZ_ALL:%=$(FUZZ_BUILD)/fuzz_%)
# The longest input each harness takes (its seeds fit).
FUZZ_MAXLEN_gguf := 16384
FUZZ_MAXLEN_safetensors := 16384
FUZZ_MAXLEN_hf_config := 4096
FUZZ_MAXLEN_spm := 65536
FUZZ_MAXLEN_tokenizer_json := 32768
FUZZ_MAXLEN_tokenize := 4096
FUZZ_MAXLEN_chat := 4096
FUZZ_MAXLEN_configs := 4096
FUZZ_MAXLEN_corpus := 65536
FUZZ_MAXLEN_ckpt := 98304
FUZZ_MAXLEN_eval := 8192
FUZZ_MAXLEN_adapter := 32768
FUZZ_DICT_hf_config := -dict=$(CURDIR)/tests/fuzz/json.dict
FUZZ_DICT_tokenizer_json := -dict=$(CURDIR)/tests/fuzz/json.dict
FUZZ_DICT_chat := -dict=$(CURDIR)/tests/fuzz/json.dict
FUZZ_DICT_configs := -dict=$(CURDIR)/tests/fuzz/json.dict
FUZZ_DICT_corpus := -dict=$(CURDIR)/tests/fuzz/json.dict
FUZZ_DICT_ckpt := -dict=$(CURDIR)/tests/fuzz/json.dict
FUZZ_DICT_eval := -dict=$(CURDIR)/tests/fuzz/json.dict
FUZZ_DICT_adapter := -dict=$(CURDIR)/tests/fuzz/json.dict
# Leaks are findings too; the harness-level limits live in tests/fuzz/fuzz.c.
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$(CURDIR)/tests/fuzz/ubsan.supp \
            ILM_SHARED_DATA=$(or $(ILM_SHARED_DATA),../shared/data)

# The objects are rebuilt when the compiler or its flags change.
$(FUZZ_BUILD)/cflags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS)' | cmp -s - $@ || \
	    echo '$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS)' > $@

FORCE:

$(FUZZ_BUILD)/obj/%.o: %.c $(FUZZ_BUILD)/cflags
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) -DILM_BUILDING_LIBRARY $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
	    -MMD -MP -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.c tests/fuzz/fuzz.h $(FUZZ_LIB) $(FUZZ_BUILD)/cflags
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< tests/fuzz/fuzz.c \
	    $(FUZZ_LIB) $(FUZZ_LDLIBS)

-include $(FUZZ_LIB_OBJ:.o=.d)

fuzz-build: $(FUZZ_BINS)

$(FUZZ_BUILD)/seeds/.stamp: $(FUZZ_BINS) tests/fuzz/seeds.sh
	$(FUZZ_ENV) tests/fuzz/seeds.sh $(FUZZ_BUILD)
	@touch $@

fuzz-seeds: $(FUZZ_BUILD)/seeds/.stamp

# One harness's run: $(1) the harness, $(2) seconds.
define fuzz_one
mkdir -p $(FUZZ_BUILD)/corpus/$(1) $(FUZZ_BUILD)/crashes/$(1) $(FUZZ_BUILD)/logs; \
printf 'fuzz %-15s %4ss ... ' $(1) $(2); \
if $(FUZZ_ENV) $(FUZZ_BUILD)/fuzz_$(1) -max_total_time=$(2) -timeout=20 -rss_limit_mb=3072 \
    -max_len=$(FUZZ_MAXLEN_$(1)) $(FUZZ_DICT_$(1)) $(FUZZ_FLAGS) -print_final_stats=1 \
    -artifact_prefix=$(FUZZ_ABS)/crashes/$(1)/ \
    $(FUZZ_ABS)/corpus/$(1) $(FUZZ_ABS)/seeds/$(1) $(wildcard $(CURDIR)/tests/fuzz/regress/$(1)) \
    > $(FUZZ_BUILD)/logs/$(1).log 2>&1; \
then sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1 execs/p' $(FUZZ_BUILD)/logs/$(1).log; \
else echo "FAILED: $(FUZZ_BUILD)/logs/$(1).log, $(FUZZ_BUILD)/crashes/$(1)/"; false; fi
endef

fuzz: fuzz-seeds
	@fail=0; $(foreach h,$(FUZZ),{ $(call fuzz_one,$(h),$(FUZZ_SECONDS)); } || fail=1;) exit $$fail

# Every committed regression input once (tests/fuzz/regress/<harness>/).
fuzz-regress: fuzz-build
	@fail=0; for h in $(FUZZ); do \
	    files=$$(find $(CURDIR)/tests/fuzz/regress/$$h -type f 2>/dev/null | sort); \
	    [ -n "$$files" ] || continue; \
	    printf 'fuzz-regress %-15s %3s inputs ... ' $$h $$(echo "$$files" | wc -l); \
	    if $(FUZZ_ENV) $(FUZZ_BUILD)/fuzz_$$h -rss_limit_mb=3072 $$files > $(FUZZ_BUILD)/regress-$$h.log 2>&1; \
	    then echo ok; else echo "FAILED: $(FUZZ_BUILD)/regress-$$h.log"; fail=1; fi; \
	done; exit $$fail

demo: deps
	@$(MAKE) --no-print-directory all
	@tools/demo.sh $(CLI)

bench: all
	$(CLI) bench gemm

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/internlm.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libinternlm.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libinternlm.so
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(CLI) $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@LIBS_PRIVATE@|$(LDLIBS) -fopenmp|g' \
	    pkgconfig/libinternlm.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/libinternlm.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/internlm.h $(DESTDIR)$(PREFIX)/lib/libinternlm.* \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/libinternlm.pc $(DESTDIR)$(PREFIX)/bin/internlm

config:
	@echo "libinternlm $(VERSION)"
	@echo "  cc:       $(shell $(CC) --version | head -n 1)"
	@echo "  openmp:   yes (-fopenmp)"
	@echo "  blas:     $(BLAS_LIBS) $(BLAS_CFLAGS)"
	@echo "  json:     $(JSON_LIBS)"
	@echo "  regex:    $(PCRE_LIBS)  unicode: $(UTF8PROC_LIBS)"
	@echo "  check:    $(CHECK_LIBS)"
	@echo "  cuda:     $(if $(filter 1,$(CUDA)),yes: $(NVCC) ($(CUDA_HOME)),no)"
	@echo "  mpi:      $(if $(filter 1,$(MPI)),detected: $(MPI_LIBS) (used by src/comm when it lands),no)"
	@echo "  sanitize: $(if $(filter 1,$(SANITIZE)),address+undefined,no)"
	@echo "  build:    $(BUILD)  lib: $(LIBDIR)  prefix: $(PREFIX)"

clean:
	rm -rf build $(LIBDIR)/libinternlm.*
