#!/bin/sh
# tests/fuzz/run-fuzz.sh [SECONDS]: build and run the YKC libFuzzer targets (§8 of
# shared/docs/ykc.md) under ASan + UBSan for a bounded time (default 60 s in
# total, split between the two targets). Builds with clang directly, not through
# automake. Seeds: generated into a temp dir, plus tests/fuzz/regressions/.
# Exits non-zero on any crash, leak, sanitizer report or build failure; crash
# inputs are copied into tests/fuzz/regressions/ to become regression seeds.
# Env: CC (default clang), FUZZ_JOBS (parallel workers per target, default 1),
#      KEEP_WORKDIR=1 to keep the temp dir.
set -eu

total=${1:-60}
case $total in ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2;; esac
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cc=${CC:-clang}
jobs=${FUZZ_JOBS:-1}
per=$(( total / 2 )); [ "$per" -ge 1 ] || per=1

work=$(mktemp -d "${TMPDIR:-/tmp}/ykc-fuzz.XXXXXX")
cleanup() { [ "${KEEP_WORKDIR:-0}" = 1 ] && echo "workdir kept: $work" || rm -rf "$work"; }
trap cleanup EXIT

jansson_cflags=$(pkg-config --cflags jansson 2>/dev/null || true)
jansson_libs=$(pkg-config --libs jansson 2>/dev/null || echo -ljansson)
src="$top/plugins/ykc/codec.c $top/plugins/ykc/frames.c $top/plugins/ykc/json.c"
inc="-I$top/plugins/ykc -I$here/seeds"
san="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
std="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Werror"

echo "run-fuzz: building in $work"
for t in split body; do
	# shellcheck disable=SC2086
	$cc -g -O1 $std $san $inc $jansson_cflags -o "$work/fuzz_ykc_$t" \
		"$here/fuzz_ykc_$t.c" $src $jansson_libs
done
# shellcheck disable=SC2086
$cc -g -O1 $std -fsanitize=address,undefined $inc $jansson_cflags -o "$work/gen_seeds" \
	"$here/seeds/gen_seeds.c" $src $jansson_libs

mkdir -p "$work/seeds-split" "$work/seeds-body" "$work/corpus-split" "$work/corpus-body" \
	"$work/artifacts" "$here/regressions"
"$work/gen_seeds" "$work/seeds-split" "$work/seeds-body"

status=0
for t in split body; do
	echo "run-fuzz: fuzz_ykc_$t for ${per}s"
	log="$work/fuzz_ykc_$t.log"
	par=""
	[ "$jobs" -gt 1 ] && par="-jobs=$jobs -workers=$jobs"
	set +e
	# shellcheck disable=SC2086
	(cd "$work" && "$work/fuzz_ykc_$t" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 \
		-dict="$here/ykc.dict" -artifact_prefix="$work/artifacts/$t-" -print_final_stats=1 \
		$par "$work/corpus-$t" "$work/seeds-$t" "$here/regressions") >"$log" 2>&1
	rc=$?
	set -e
	# with -jobs, libFuzzer writes per-worker logs into its working directory
	for w in "$work"/fuzz-*.log; do [ -f "$w" ] && cat "$w" >>"$log" && rm -f "$w"; done
	grep -E '^(stat::|Done|#[0-9]+ +DONE)' "$log" | sed "s/^/  [$t] /" || true
	if [ $rc -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|check failed' "$log"; then
		echo "run-fuzz: fuzz_ykc_$t FAILED (exit $rc); log tail:" >&2
		tail -n 40 "$log" >&2
		status=1
	fi
done

found=0
for a in "$work"/artifacts/*; do
	[ -f "$a" ] || continue
	sum=$(sha1sum "$a" | cut -c1-16)
	cp "$a" "$here/regressions/$(basename "$a" | cut -d- -f1-2)-$sum"
	found=$((found + 1))
done
[ $found -eq 0 ] || echo "run-fuzz: $found crash input(s) saved in tests/fuzz/regressions/" >&2
[ $status -eq 0 ] && echo "run-fuzz: OK" || echo "run-fuzz: FAILED" >&2
exit $status
