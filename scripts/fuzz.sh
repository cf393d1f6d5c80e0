#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (`make fuzz`: 1m;
# `make test`: 3s). Targets are found, not listed: any `func FuzzX(f
# *testing.F)` in a _test.go file is run. A crasher fails the run: go test
# writes the input to PKG/testdata/fuzz/FuzzX/, where, once the bug is
# fixed, it stays as a regression case that every plain `go test` runs.
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-1m}
# Workers per target; the fuzzing engine defaults to one per core.
FUZZPARALLEL=${FUZZPARALLEL:-2}
failed=()
n=0

# crashers lists the inputs go test wrote for a target (PKG/testdata/fuzz/TARGET).
crashers() { ls "$1/testdata/fuzz/$2" 2>/dev/null; }

# fuzz_one runs one target, its output in $out. Go 1.26's fuzzing
# coordinator can fail a target with a bare "context deadline exceeded" as
# -fuzztime ends, having found nothing (golang/go#75804, fixed in Go 1.27):
# such a run, with no new crasher written, is run once more, and a second
# such end counts as a pass, said in one line.
fuzz_one() {
	local before tries
	before=$(crashers "$1" "$2")
	for tries in 1 2; do
		out=$(go test -run '^$' -fuzz "^${2}\$" -fuzztime "$FUZZTIME" -parallel "$FUZZPARALLEL" "$1" 2>&1) && return 0
		if ! grep -q 'context deadline exceeded' <<<"$out" || [ "$(crashers "$1" "$2")" != "$before" ]; then
			return 1
		fi
		echo "fuzz $1 $2: the run ended on Go's fuzztime race (golang/go#75804), no crasher written"
	done
	return 0
}
while IFS= read -r file; do
	pkg=./$(dirname "$file")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' "$file"); do
		n=$((n + 1))
		start=$(date +%s)
		if fuzz_one "$pkg" "$target"; then
			echo "fuzz $pkg $target: ok ($(( $(date +%s) - start ))s with the build)"
		else
			echo "fuzz $pkg $target: FAILED"
			printf '%s\n' "$out" | grep -v '^\s*/' | tail -25
			failed+=("$pkg $target")
		fi
	done
done < <(grep -rl --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*(f \*testing\.F)' . | sed 's|^\./||' | sort)
if [ "$n" = 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: ${#failed[@]} of $n targets failed: ${failed[*]}" >&2
	exit 1
fi
echo "fuzz: $n targets, $FUZZTIME each, no crasher"
