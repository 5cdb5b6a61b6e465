# dagq — one non-recursive Makefile.
#
#   make            release build: bin/dagq-scheduler bin/dagq-worker bin/dagq bin/dagq-web
#   make san        the same built with ASan+UBSan into build/san/bin (tests use it)
#   make test       installs what is missing, builds with sanitizers, runs every test
#   make demo       installs what is missing, runs the example ETL DAG on private servers
#   make compose-demo  the same example on the docker-compose stack (podman), then tears it down
#   make compose-test  only the docker-compose tests (tests/compose_test.sh; make test runs them too)
#   make bench      benchmarks (see BENCHMARKS.md)
#   make format     clang-format every C file
#
# WERROR=1 (the default under `make test` and in CI) turns warnings into errors.

PKGS      := libpq hiredis rdkafka msgpack libmicrohttpd openssl libcurl
CC        ?= cc
WERROR    ?= $(if $(CI),1,0)
OPT       ?= -O2
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
               -Wno-missing-field-initializers -g $(OPT) -MMD -MP -Icommon -Icommon/queue \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ifeq ($(WERROR),1)
BASE_CFLAGS += -Werror
endif
LIBS      := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

COMMON_SRC := $(sort $(wildcard common/*.c common/queue/*.c))
SCHED_SRC  := $(sort $(wildcard scheduler/*.c))
WORKER_SRC := $(sort $(wildcard worker/*.c))
CLI_SRC    := $(sort $(wildcard cli/*.c))
WEB_SRC    := $(sort $(wildcard web/*.c))
# the UI's files and the OpenAPI document, embedded into dagq-web
WEB_ASSETS := $(sort $(shell find web/ui -type f 2>/dev/null)) web/openapi.json
UNIT_SRC   := $(sort $(wildcard tests/unit/test_*.c))
BROKER_SRC := $(sort $(wildcard tests/broker/check_*.c))
SQL_FILES  := $(sort $(wildcard sql/*.sql))

PROGRAMS := dagq-scheduler dagq-worker dagq dagq-web

# $(call variant,NAME,DIR,EXTRA_CFLAGS,BINDIR)
define variant
$(1)_OBJDIR := $(2)
$(1)_CFLAGS := $$(BASE_CFLAGS) $(3)
$(1)_LDFLAGS := $(3)
$(1)_COMMON_OBJ := $$(COMMON_SRC:%.c=$(2)/%.o) $(2)/gen/migrations.o
$(1)_LIB := $(2)/libdagq.a

$(2)/%.o: %.c
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_CFLAGS) -c $$< -o $$@

$(2)/gen/migrations.c: $$(SQL_FILES) scripts/embed-sql.sh
	@mkdir -p $$(@D)
	sh scripts/embed-sql.sh $$(SQL_FILES) > $$@.tmp && mv $$@.tmp $$@

$(2)/gen/migrations.o: $(2)/gen/migrations.c
	$$(CC) $$($(1)_CFLAGS) -c $$< -o $$@

$$($(1)_LIB): $$($(1)_COMMON_OBJ)
	@rm -f $$@
	ar rcs $$@ $$^

$(4)/dagq-scheduler: $$(SCHED_SRC:%.c=$(2)/%.o) $$($(1)_LIB)
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(LIBS)

$(4)/dagq-worker: $$(WORKER_SRC:%.c=$(2)/%.o) $$($(1)_LIB)
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(LIBS)

$(4)/dagq: $$(CLI_SRC:%.c=$(2)/%.o) $$($(1)_LIB)
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(LIBS)

$(2)/gen/assets.c: $$(WEB_ASSETS) scripts/embed-assets.sh
	@mkdir -p $$(@D)
	sh scripts/embed-assets.sh web $$(WEB_ASSETS) > $$@.tmp && mv $$@.tmp $$@

$(2)/gen/assets.o: $(2)/gen/assets.c
	$$(CC) $$($(1)_CFLAGS) -Iweb -c $$< -o $$@

$(2)/web/%.o: web/%.c
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_CFLAGS) -Iweb -c $$< -o $$@

$(4)/dagq-web: $$(WEB_SRC:%.c=$(2)/%.o) $(2)/gen/assets.o $$($(1)_LIB)
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(LIBS)

$(2)/tests/test_%: $(2)/tests/unit/test_%.o $$($(1)_LIB)
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(LIBS)

$(2)/tests/check_%: $(2)/tests/broker/check_%.o $$($(1)_LIB)
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(LIBS)

-include $$(shell find $(2) -name '*.d' 2>/dev/null)
endef

$(eval $(call variant,REL,build/release,,bin))
$(eval $(call variant,SAN,build/san,$(SAN_FLAGS),build/san/bin))

UNIT_TESTS := $(patsubst tests/unit/%.c,build/san/tests/%,$(UNIT_SRC)) \
              $(patsubst tests/broker/%.c,build/san/tests/%,$(BROKER_SRC))

.PHONY: all san deps test unit integration demo compose-demo compose-test bench bench-airflow format clean
.DEFAULT_GOAL := all

all: $(addprefix bin/,$(PROGRAMS))

san: $(addprefix build/san/bin/,$(PROGRAMS)) $(UNIT_TESTS)

deps:
	@sh scripts/deps.sh

# `make test` is what CI runs: deps, a -Werror sanitizer build, then every suite.
test: deps
	$(MAKE) -j$$(nproc) WERROR=1 san all
	bash tests/run.sh

unit: san
	bash tests/run.sh unit

demo: deps
	$(MAKE) all
	bash scripts/demo.sh

compose-demo: deps
	bash scripts/compose-demo.sh

compose-test: deps
	bash tests/compose_test.sh

bench: deps
	$(MAKE) OPT=-O2 all
	bash bench/run.sh

bench-airflow: deps
	$(MAKE) all
	bash bench/airflow.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin
