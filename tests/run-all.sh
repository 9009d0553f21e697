#!/bin/sh
# tests/run-all.sh: the whole test suite, on a fresh Debian 12 machine as root.
#
#   1. installs the Debian packages it needs (tests/setup-debian.sh)
#   2. builds with -Werror and runs `make check` against a private MariaDB
#   3. builds again with ASan+UBSan and runs `make check` under the sanitizers
#   4. fuzzes the YKC splitter/decoder for a bounded time (FUZZ_SECONDS, default 60)
#   5. `make distcheck`, a --disable-cec build (nothing of CEC in its schema and routes), the
#      out-of-tree example plugin, and the Debian package install/start/purge test
# Build trees go to _build/ (ignored by git). Exit status is non-zero on any failure.
# Set EVCS_QUICK=1 to run only steps 1-2.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

step() { printf '\n==== %s ====\n' "$*"; }
passed=0
failed=0
failures=""
run_step() {
	name=$1
	shift
	step "$name"
	if "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures="$failures\n  $name"
		echo "#### FAILED: $name"
	fi
}

step "packages"
"$top/tests/setup-debian.sh"

step "autogen"
./autogen.sh >/dev/null 2>&1 || ./autogen.sh

main_check() {
	mkdir -p _build/main && cd _build/main &&
	"$top/configure" -q --enable-werror --prefix=/usr --sysconfdir=/etc --localstatedir=/var >/dev/null &&
	make -j"$jobs" >/dev/null &&
	"$top/tests/with-mariadb.sh" make -j1 check
	rc=$?
	cd "$top"
	return $rc
}
run_step "build and make check (-Werror, real MariaDB)" main_check

if [ "${EVCS_QUICK:-0}" != 1 ]; then
	asan_check() {
		mkdir -p _build/asan && cd _build/asan &&
		"$top/configure" -q --enable-werror CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
			LDFLAGS="-fsanitize=address,undefined" >/dev/null &&
		make -j"$jobs" >/dev/null &&
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			"$top/tests/with-mariadb.sh" make -j1 check
		rc=$?
		cd "$top"
		return $rc
	}
	run_step "ASan+UBSan make check" asan_check

	valgrind_check() {
		cd _build/main || return 1
		rc=0
		for t in tests/test_core tests/test_script tests/test_ykc_codec tests/test_cec_proto tests/test_cec_model; do
			[ -x "$t" ] || continue
			echo "valgrind $t"
			valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
				--show-leak-kinds=definite "$t" >/dev/null 2>"$t.valgrind" || { rc=1; cat "$t.valgrind"; }
		done
		cd "$top"
		return $rc
	}
	run_step "valgrind (memcheck) on the in-process suites" valgrind_check

	if [ -x tests/fuzz/run-fuzz.sh ]; then
		run_step "fuzz YKC splitter and decoder (${FUZZ_SECONDS}s)" tests/fuzz/run-fuzz.sh "$FUZZ_SECONDS"
	fi

	distcheck() {
		cd _build/main && "$top/tests/with-mariadb.sh" make -j"$jobs" distcheck >/dev/null
		rc=$?
		cd "$top"
		return $rc
	}
	run_step "make distcheck" distcheck

	if [ -x tests/test_disable_cec.sh ]; then
		run_step "--disable-cec build: no CEC tables, routes or OpenAPI paths" tests/test_disable_cec.sh
	fi
	if [ -x tests/test_example_plugin.sh ]; then
		run_step "out-of-tree example plugin via pkg-config" tests/test_example_plugin.sh
	fi
	if [ -x tests/test_package.sh ]; then
		run_step "Debian package build, install, start, purge" tests/with-mariadb.sh tests/test_package.sh
	fi
fi

printf '\n==== summary ====\n'
[ -n "$failures" ] && printf "failed steps:$failures\n"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
