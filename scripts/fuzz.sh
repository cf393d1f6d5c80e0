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
while IFS= read -r file; do
	pkg=./$(dirname "$file")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' "$file"); do
		n=$((n + 1))
		start=$(date +%s)
		if out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -parallel "$FUZZPARALLEL" "$pkg" 2>&1); then
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
