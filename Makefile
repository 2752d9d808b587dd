# Top-level build of the unprivileged Postfix fork.
#
#   make                 fetch + verify, unpack + patch, configure, build, and
#                        install into the staging root $(BUILD)/root
#   make tests           upstream's unit tests that pass on pristine upstream,
#                        plus the drivers our patches add
#   make refresh         rewrite patches/ from the edited tree $(SRC)
#   make UNPRIVILEGED=no BUILD=build/upstream
#                        the same upstream and patch queue without the switch
#   make image           the container image (container/Containerfile)
#   make deps            install the Debian packages (scripts/install-deps)
#   make check           build, then the whole test suite (tests/run), as CI
#                        runs it; SUITES="unprivileged build" runs some
#
# Upstream code is never committed: $(BUILD) and $(DL) are git-ignored.

include makedefs.local

BUILD ?= build
DL ?= build/dl
include postfix/UPSTREAM
SRC = $(BUILD)/src/postfix-$(POSTFIX_VERSION)
ROOT = $(BUILD)/root
JOBS ?= $(shell nproc)
PATCHES = $(shell sed -e 's/\#.*//' patches/series)

MAKEFILES_ARGS = shared=$(SHARED) dynamicmaps=$(DYNAMICMAPS) pie=$(PIE) \
	CCARGS='$(CCARGS)' AUXLIBS='$(AUXLIBS)' \
	AUXLIBS_PCRE='$(AUXLIBS_PCRE)' AUXLIBS_MYSQL='$(AUXLIBS_MYSQL)' \
	AUXLIBS_LMDB='$(AUXLIBS_LMDB)' AUXLIBS_CDB='$(AUXLIBS_CDB)' \
	OPT='$(OPT)' DEBUG='$(DEBUG)' SHLIB_RPATH='$(SHLIB_RPATH)' \
	PLUGIN_LD='$(PLUGIN_LD)' $(INSTALL_PARAMS)

.PHONY: all fetch prepare build install tests unit-tests refresh clean \
	distclean check deps image FORCE

all: install

fetch: $(DL)/$(TARBALL)

$(DL)/$(TARBALL): postfix/UPSTREAM postfix/fetch
	postfix/fetch $(DL)
	@touch $@

prepare: $(BUILD)/prepared.stamp

$(BUILD)/prepared.stamp: $(DL)/$(TARBALL) postfix/prepare patches/series \
		$(addprefix patches/,$(PATCHES))
	postfix/prepare $(DL) $(SRC)
	@touch $@

# Re-run "make makefiles" only when its arguments change.
$(BUILD)/makefiles.args: FORCE
	@mkdir -p $(BUILD)
	@printf '%s\n' "$(MAKEFILES_ARGS)" >$@.new
	@if cmp -s $@ $@.new; then rm -f $@.new; else mv $@.new $@; fi

$(BUILD)/makefiles.stamp: $(BUILD)/prepared.stamp $(BUILD)/makefiles.args
	$(MAKE) -C $(SRC) makefiles $(MAKEFILES_ARGS)
	@touch $@

build: $(BUILD)/makefiles.stamp
	$(MAKE) -C $(SRC) -j$(JOBS) >$(BUILD)/make.log 2>&1 || \
		{ tail -n 40 $(BUILD)/make.log; exit 1; }
	@grep -hE '^[^ :]+\.[ch]:[0-9]+:[0-9]+: warning:' $(BUILD)/make.log | \
		sed -E 's/:[0-9]+:[0-9]+:/:/' | \
		sort -u | grep -vxF -f postfix/upstream-warnings | \
		sed 's/^/new compiler warning: /' | { ! grep .; } || \
		{ echo "see $(BUILD)/make.log; only postfix/upstream-warnings are allowed"; exit 1; }

# postfix-install in package mode does no chown/chgrp/chmod g+s, so the
# staging root can be made by any user; it is rebuilt only when the build
# produced something newer than the last install, next to the old one, and
# then swapped in, so that running instances lose their tree only briefly.
install: build
	@if [ ! -f $(BUILD)/install.stamp ] || \
	    [ -n "$$(find $(SRC)/bin $(SRC)/libexec $(SRC)/lib $(SRC)/conf \
	       -type f ! -name main.cf.default -newer $(BUILD)/install.stamp \
	       -print -quit)" ]; then \
		set -e; rm -rf $(ROOT).new; \
		echo "installing into $(ROOT)"; \
		(cd $(SRC) && LD_LIBRARY_PATH=$$PWD/lib sh postfix-install \
		    -non-interactive -package \
		    install_root=$(CURDIR)/$(ROOT).new \
		    tempdir=$(CURDIR)/$(BUILD)/tmp $(INSTALL_PARAMS) \
		    mail_owner=postfix setgid_group=postdrop \
		    >$(CURDIR)/$(BUILD)/install.log); \
		rm -rf $(ROOT).old; [ ! -d $(ROOT) ] || mv $(ROOT) $(ROOT).old; \
		mv $(ROOT).new $(ROOT); rm -rf $(ROOT).old; \
		touch $(BUILD)/install.stamp; \
	else echo "$(ROOT) is up to date"; fi

# Upstream's unit tests (tests/unit/upstream-tests names them and says why
# the others are left out), then our own #ifdef TEST drivers.
tests unit-tests: build
	tests/unit/run-upstream $(SRC)

refresh:
	postfix/refresh $(SRC) $(PATCH)
	@touch $(BUILD)/prepared.stamp

check: all
	tests/run $(SUITES)

deps:
	scripts/install-deps all

image:
	container/build

clean:
	rm -rf $(BUILD)/src $(BUILD)/root $(BUILD)/*.stamp $(BUILD)/*.log \
		$(BUILD)/makefiles.args $(BUILD)/tmp

distclean:
	rm -rf build build-*

# Benchmark (issue 10; bench/run, docs/BENCHMARKS.md; needs root): this
# build, the same upstream built without the switch (build/upstream) and
# Debian's stock Postfix, side by side in one run of the shared harness
# ../shared/bench/mta-bench.
#   make bench          the full matrix, 3 repetitions (about 20 minutes)
#   make bench-smoke    small matrix, one repetition (tests/bench.bats)
.PHONY: bench bench-smoke
bench: install
	$(MAKE) UNPRIVILEGED=no BUILD=build/upstream install
	bench/run full

bench-smoke: install
	$(MAKE) UNPRIVILEGED=no BUILD=build/upstream install
	bench/run smoke

# First run (issue 5; scripts/demo, docs/mailpaths.md; needs root): MariaDB,
# Dovecot and this MTA on 127.0.0.1, each under an unprivileged account,
# with a demo domain and user; prints how to send a first mail and read it.
#   make demo           build if needed, then start everything afresh
#   make demo-stop      stop everything; nothing is left running
.PHONY: demo demo-stop
demo:
	scripts/demo start

demo-stop:
	scripts/demo stop

# The split topology on this machine (issue 8; container/split,
# docs/split.md; needs root and the image): the queue "pod" (log, queue,
# delivery, bridge-queue) and two edge "pods" (edge, bridge-edge) as
# unprivileged podman containers on 127.0.0.1, bridged by socat with
# mutual TLS; prints how to send a first mail.
#   make split-up       start it afresh
#   make split-down     remove its containers and volumes
.PHONY: split-up split-down
split-up:
	container/split up

split-down:
	container/split down
