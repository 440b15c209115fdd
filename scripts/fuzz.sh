#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang in build-fuzz/ and
# runs each for SECONDS (default 60) from its seed corpus, two at a time.
# The committed corpus is copied to a temporary working corpus (the test
# guest's images join the loaders' when a build has them), so the tree
# stays clean. Fails on any crash, leak, sanitizer report or timeout and
# prints where the input that did it was kept; prints one line per target
# (runs, executions per second, coverage, corpus size).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Environment: CHV_FUZZ_JOBS (parallel targets, default 2), CHV_FUZZ_KEEP
# (directory to keep the work in; default a temporary one, removed when
# nothing failed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-60}
shift || true
jobs=${CHV_FUZZ_JOBS:-2}

CC=clang cmake -S . -B build-fuzz -DCHV_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz-all >/dev/null

if [ $# -gt 0 ]; then
	targets=("$@")
else
	targets=()
	for d in tests/fuzz/corpus/*/; do
		targets+=("$(basename "$d")")
	done
fi

work=${CHV_FUZZ_KEEP:-$(mktemp -d /tmp/chv-fuzz-XXXXXX)}
mkdir -p "$work"
echo "fuzz: ${#targets[@]} targets, ${secs}s each, $jobs at a time, work in $work"

# One target: corpus copied, libFuzzer run, summary line in $work/<t>.summary.
run_one() {
	local t=$1 dir=$work/$1
	mkdir -p "$dir/corpus" "$dir/artifacts"
	cp tests/fuzz/corpus/"$t"/* "$dir/corpus/"
	case $t in
	loader_pvh) for g in build*/guest/chv-testguest.elf; do
			[ -f "$g" ] && cp "$g" "$dir/corpus/testguest-$(dirname "$(dirname "$g")").elf"
		done ;;
	loader_bzimage) for g in build*/guest/chv-testguest.bzImage; do
			[ -f "$g" ] && cp "$g" "$dir/corpus/testguest-$(dirname "$(dirname "$g")").bzImage"
		done ;;
	esac
	local rc=0 max_len=8192
	# The loaders' seeds include whole test-guest images.
	case $t in loader_*) max_len=131072 ;; esac
	# -rss_limit_mb: ASan's shadow counts; -timeout: one input may take 10 s.
	(cd "$dir" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		"$root/build-fuzz/bin/fuzz_$t" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -max_len=$max_len -print_final_stats=1 \
		-artifact_prefix="$dir/artifacts/" corpus >"$dir/log" 2>&1) || rc=$?
	local runs eps cov corp
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
	cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$dir/log" | tail -1)
	if [ "$rc" = 0 ]; then
		corp=$(find "$dir/corpus" -type f | wc -l)
		echo "fuzz: ok   $t: ${runs:-?} runs, ${eps:-?} exec/s, ${cov:-no coverage line}, $corp in corpus" >"$dir/summary"
	else
		local what crash
		what=$(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z -]+|SUMMARY: [A-Za-z]+: [^ ]+|fuzz invariant broken: .*' "$dir/log" || echo "exit $rc")
		crash=$(ls "$dir"/artifacts/* 2>/dev/null | head -1)
		echo "fuzz: FAIL $t: $what; input: ${crash:-none}; log: $dir/log" >"$dir/summary"
	fi
	cat "$dir/summary"
}

for t in "${targets[@]}"; do
	if [ ! -x "build-fuzz/bin/fuzz_$t" ]; then
		echo "fuzz: FAIL $t: no such target" | tee "$work/$t.missing"
		continue
	fi
	run_one "$t" &
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		sleep 0.5
	done
done
wait

failed=0
for t in "${targets[@]}"; do
	if [ ! -f "$work/$t/summary" ] || grep -q '^fuzz: FAIL' "$work/$t/summary"; then
		failed=$((failed + 1))
	fi
done
echo "fuzz: $(( ${#targets[@]} - failed )) passed, $failed failed"
if [ "$failed" -gt 0 ]; then
	echo "fuzz: $failed of ${#targets[@]} targets failed; inputs and logs kept in $work"
	echo "fuzz: reproduce with build-fuzz/bin/fuzz_<target> <input>"
	exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${secs}s without a finding"
[ -n "${CHV_FUZZ_KEEP:-}" ] || rm -rf "$work"
