package main

import (
	"os"
	"runtime/debug"
)

// tensorGCPercent is the garbage collector's target while GOGC is unset.
// Tensors are large, short-lived and pointer-free: with Go's default of
// 100 the heap grows to twice the live tensors before each collection, so
// a training step's peak RSS was about twice what it needs. Measured on
// fcn (batch 8, AVX2, dl4img bench, 3 rounds interleaved): peak RSS 1.46–
// 1.51 GiB at 100, 1.28–1.36 at 50, 0.97–1.00 at 25 (PyTorch: 0.80–0.95);
// steps at 25 within 3% of 50 on captcha-cnn, crnn and fcn, as marking
// pointer-free memory is cheap.
const tensorGCPercent = 25

// setGCPercent applies tensorGCPercent unless GOGC says otherwise.
func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(tensorGCPercent)
	}
}
