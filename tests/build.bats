#!/usr/bin/env bats
# The build (issue 3): the upstream pin is verified, the patch queue
# applies, the built tree has the features we promise, and upstream's own
# unit tests plus our #ifdef TEST drivers pass (make tests).

load lib/common

setup_file() {
	suite_workdir build
}

teardown_file() {
	suite_cleanup
}

postconf_built() {
	# The staged tree's own main.cf may name paths of the target system;
	# point the plugin and meta directories into the staged tree.
	mkdir -p "$WORK/conf"
	printf 'shlib_directory = %s\nmeta_directory = %s\n' \
		"$ROOT/usr/lib/postfix" "$ROOT/etc/postfix" >"$WORK/conf/main.cf"
	# postconf reads master.cf too (service-defined parameters).
	: >"$WORK/conf/master.cf"
	"$ROOT/usr/sbin/postconf" -c "$WORK/conf" "$@"
}

@test "the built tree is Postfix 3.10.13" {
	run postconf_built -dh mail_version
	[ "$output" = "3.10.13" ]
}

@test "map types: btree, hash, lmdb, cdb, mysql, pcre, regexp, texthash" {
	run postconf_built -m
	echo "$output"
	for t in btree hash lmdb cdb mysql pcre regexp texthash; do
		echo "$output" | grep -qx "$t"
	done
	# mysql and pcre are dynamically loaded plugins.
	grep -qE '^mysql[[:space:]]+postfix-mysql\.so' "$ROOT/etc/postfix/dynamicmaps.cf"
	grep -qE '^pcre[[:space:]]+postfix-pcre\.so' "$ROOT/etc/postfix/dynamicmaps.cf"
}

@test "SASL: Cyrus server and client, Dovecot server" {
	run postconf_built -a
	echo "$output" | grep -qx cyrus
	echo "$output" | grep -qx dovecot
	run postconf_built -A
	echo "$output" | grep -qx cyrus
}

@test "the build is the unprivileged mode and hardened like a distribution" {
	grep -q -- '-DUSE_UNPRIVILEGED' "$ROOT/etc/postfix/makedefs.out"
	grep -q -- '-D_FORTIFY_SOURCE=2' "$ROOT/etc/postfix/makedefs.out"
	readelf -h "$ROOT/usr/libexec/postfix/smtpd" | grep -q 'DYN (Position-Independent'
	readelf -d "$ROOT/usr/libexec/postfix/smtpd" | grep -q 'BIND_NOW'
	readelf -l "$ROOT/usr/libexec/postfix/smtpd" | grep -q 'GNU_RELRO'
	readelf -d "$ROOT/usr/libexec/postfix/smtpd" | grep -q 'RUNPATH.*\$ORIGIN'
	# No set-uid or set-gid file in the staged tree.
	[ -z "$(find "$ROOT" -perm /6000 -print)" ]
}

@test "postfix/fetch refuses a tarball with one flipped byte" {
	. "$TOP/postfix/UPSTREAM"
	mkdir -p "$WORK/dl"
	cp "$BUILD/dl/$TARBALL" "$BUILD/dl/$SIGNATURE" "$BUILD/dl/signing-key.asc" "$WORK/dl/"
	python3 -c '
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x01
open(p, "wb").write(b)' "$WORK/dl/$TARBALL"
	run "$TOP/postfix/fetch" "$WORK/dl"
	echo "$output"
	[ "$status" -ne 0 ]
	echo "$output" | grep -q "sha256 mismatch for $TARBALL"
}

@test "postfix/fetch refuses a signature that does not verify" {
	. "$TOP/postfix/UPSTREAM"
	rm -rf "$WORK/dl2"
	mkdir -p "$WORK/dl2"
	cp "$BUILD/dl/$TARBALL" "$BUILD/dl/$SIGNATURE" "$BUILD/dl/signing-key.asc" "$WORK/dl2/"
	# A different signing key: the pinned signature cannot verify with it.
	gpg_home=$WORK/gnupg
	mkdir -m 700 "$gpg_home"
	gpg --homedir "$gpg_home" --batch --passphrase '' \
		--quick-gen-key 'Not Wietse <nobody@example.test>' ed25519 sign never 2>/dev/null
	gpg --homedir "$gpg_home" --armor --export >"$WORK/dl2/signing-key.asc"
	run "$TOP/postfix/fetch" "$WORK/dl2"
	echo "$output"
	[ "$status" -ne 0 ]
	echo "$output" | grep -q 'OpenPGP signature check of .* failed'
}

@test "postfix/fetch accepts and reuses the verified download" {
	run "$TOP/postfix/fetch" "$BUILD/dl"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q 'verified (sha256 and signature by 622C7C012254C186677469C50C0B590E80CA15A7)'
}

@test "the patch queue applies to pristine upstream with no fuzz, and each patch has a DEP-3 header" {
	local p
	run "$TOP/postfix/prepare" "$BUILD/dl" "$WORK/tree/postfix"
	echo "$output"
	[ "$status" -eq 0 ]
	for p in $(sed -e 's/#.*//' "$TOP/patches/series"); do
		head -n 30 "$TOP/patches/$p" | grep -q '^Subject: '
		head -n 30 "$TOP/patches/$p" | grep -q '^Description: '
		head -n 30 "$TOP/patches/$p" | grep -q '^Forwarded: '
		head -n 30 "$TOP/patches/$p" | grep -q '^Last-Update: '
		head -n 30 "$TOP/patches/$p" | grep -q '^Upstream-Version: 3.10.13'
	done
	# Every 2xxx patch is guarded by the switch: a build without it is upstream.
	for p in "$TOP"/patches/2*.patch; do
		grep -q '^+.*USE_UNPRIVILEGED\|unprivileged_mode' "$p"
	done
}

@test "a patch whose context does not match stops prepare loudly" {
	mkdir -p "$WORK/badq/patches" "$WORK/badq/postfix"
	cp "$TOP/postfix/prepare" "$TOP/postfix/UPSTREAM" "$WORK/badq/postfix/"
	sed 's/^ static void check_default_privs(void)$/ static void check_default_privs_renamed(void)/' \
		"$TOP/patches/2003-unprivileged-mail-params.patch" \
		>"$WORK/badq/patches/2003-unprivileged-mail-params.patch"
	if cmp -s "$TOP/patches/2003-unprivileged-mail-params.patch" \
		"$WORK/badq/patches/2003-unprivileged-mail-params.patch"; then false; fi
	echo 2003-unprivileged-mail-params.patch >"$WORK/badq/patches/series"
	run "$WORK/badq/postfix/prepare" "$BUILD/dl" "$WORK/badq/tree"
	echo "$output"
	[ "$status" -ne 0 ]
	echo "$output" | grep -q 'does not apply to Postfix 3.10.13'
}

@test "prepare refuses to throw away edits that are not in patches/ yet" {
	echo '/* local edit */' >>"$WORK/tree/postfix/src/util/msg.c"
	run "$TOP/postfix/prepare" "$BUILD/dl" "$WORK/tree/postfix"
	echo "$output"
	[ "$status" -ne 0 ]
	echo "$output" | grep -q 'uncommitted edits'
	grep -q 'local edit' "$WORK/tree/postfix/src/util/msg.c"
}

@test "make tests: upstream's unit tests and our drivers pass" {
	run make -C "$TOP" tests
	echo "$output" | tail -n 30
	[ "$status" -eq 0 ]
	echo "$output" | grep -q 'set_ugid: PASS=6 FAIL=0'
}

@test "a second make with nothing changed does almost nothing" {
	run make -C "$TOP"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q 'is up to date'
	if echo "$output" | grep -q 'postfix/prepare'; then false; fi
}
