#!/usr/bin/env bats
# Static checks that every change must keep: shell passes shellcheck,
# YAML passes yamllint, Python compiles, and no upstream code is committed.

load lib/common

shell_scripts() {
	# Every tracked file that starts with a sh shebang.
	git -C "$TOP" ls-files | while read -r f; do
		[ -f "$TOP/$f" ] || continue
		if head -n 1 "$TOP/$f" | grep -qE '^#!/bin/sh|^#!/usr/bin/env sh'; then
			echo "$f"
		fi
	done
}

@test "every POSIX shell script passes shellcheck" {
	cd "$TOP"
	files=$(shell_scripts)
	[ -n "$files" ]
	# shellcheck disable=SC2086
	run shellcheck -x -s sh $files
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "the BATS helpers pass shellcheck as bash" {
	cd "$TOP"
	run shellcheck -x -s bash -e SC1091,SC2034,SC2154 tests/lib/*.bash
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "the BATS suites have no shellcheck error (such as a negation that cannot fail a test)" {
	cd "$TOP"
	run shellcheck -x -s bash -S error tests/*.bats
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "Python helpers compile" {
	cd "$TOP"
	for f in $(git ls-files '*.py'); do
		python3 -m py_compile "$f"
	done
}

@test "YAML files pass yamllint" {
	cd "$TOP"
	files=$(git ls-files '*.yaml' '*.yml' | grep -v '/templates/' || true)
	[ -n "$files" ]
	# shellcheck disable=SC2086
	run yamllint -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}' $files
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "no upstream Postfix source is committed" {
	cd "$TOP"
	run sh -c "git ls-files | grep -E '(^|/)src/[a-z-]+/[^/]+\.[ch]$'"
	echo "$output"
	[ "$status" -ne 0 ]
	if git ls-files | grep -q '\.tar\.gz$'; then false; fi
}

@test "every patch file is in patches/series and vice versa" {
	cd "$TOP"
	for p in patches/*.patch; do
		grep -qxF "$(basename "$p")" patches/series
	done
	for p in $(sed -e 's/#.*//' patches/series); do
		[ -f "patches/$p" ]
	done
}
