# pg_kappa — PGXS build, plus the two commands of the README
# (make demo, make check) and their helpers.

MODULE_big = pg_kappa
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c src/*/*.c))
EXTENSION = pg_kappa
DATA = $(wildcard src/pg_kappa--*.sql)
PGFILEDESC = "pg_kappa - Kappa-architecture dataflow engine"

# The suites, declared as contrib modules do, so that "make installcheck"
# runs them against an installed server (which must be configured as
# test/conf.sh prints).  "make check" (test/check.sh) runs them all on
# temporary instances instead, also as root.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
ISOLATION = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation
TAP_TESTS ?= 1
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))
PROVE_FLAGS = -I test/perl

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare -Wno-clobbered -Werror=implicit-function-declaration

# Programs built and installed with the extension.
SUBDIRS = tools/kappa_recv

# deps, demo, demo-stop and check must work before the server headers are
# installed, and PGXS's own "check" (which refuses out-of-tree modules) must
# not shadow ours, so PGXS is included only for the other goals; those
# targets run the build as a sub-make.
OWN_GOALS = deps demo demo-stop check
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

ifneq ($(filter $(OWN_GOALS),$(MAKECMDGOALS)),)

.PHONY: deps demo demo-stop check

deps:
	@sh test/deps.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory install
	@sh test/demo.sh start

demo-stop:
	@sh test/demo.sh stop

check:
	@$(MAKE) --no-print-directory all
	@sh test/check.sh

else ifneq ($(PGXS),)

include $(PGXS)

# every source file includes the shared header
$(OBJS): src/pg_kappa.h

all: all-tools
install: install-tools
clean: clean-tools

.PHONY: all-tools install-tools clean-tools
all-tools install-tools clean-tools:
	@for d in $(SUBDIRS); do \
		[ ! -f $$d/Makefile ] || $(MAKE) -C $$d PG_CONFIG=$(PG_CONFIG) $(subst -tools,,$@) || exit 1; \
	done

else

all install clean:
	@echo "pg_config or the PostgreSQL server headers are missing: run 'make deps' first" >&2; exit 1

endif
