// Package fuzzguard holds what the fuzz targets share: a deadline per
// input, so that an input that makes a parser hang is reported (with the
// input saved) instead of stalling the fuzzer.
package fuzzguard

import (
	"fmt"
	"time"
)

// PerInput is how long one input may take. The parsers under test answer
// in milliseconds; seconds means a hang (on a loaded 2-core CI machine too).
const PerInput = 20 * time.Second

// Deadline crashes the process (which the fuzzer records as a failure of
// the current input) if the returned stop is not called within PerInput.
// Use: defer fuzzguard.Deadline()().
func Deadline() (stop func()) { return deadline(PerInput) }

func deadline(d time.Duration) (stop func()) {
	start := time.Now()
	t := time.AfterFunc(d, func() {
		panic(fmt.Sprintf("fuzz input still running after %s: a hang", time.Since(start).Round(time.Second)))
	})
	return func() { t.Stop() }
}
