//go:build goexperiment.simd

package main

import "strings"

// fmaSetting is the GODEBUG setting main re-executes itself with.
const fmaSetting = "cpu.fma=off"

// withFMAOff returns the GODEBUG value to re-execute with, and false when
// GODEBUG already says something about cpu.fma.
//
// Built with GOEXPERIMENT=simd (Go 1.26, amd64), math.Exp's FMA path costs
// 650–1400 ns a call instead of ~10 ns on the development VM: the
// process runs with the upper vector state dirty and archExp mixes SSE and
// VEX instructions, paying a state transition each time. GoMLX's Go backend
// computes Logistic, Tanh and Exp with math.Exp, so the formula reader
// spent ~30% of a training step and ~60% of its validation there. Without
// FMA, archExp stays on SSE (~18 ns); matmul speed is unchanged. CPU
// feature switches are read once at process start, hence the re-exec.
// Related upstream: golang/go#80835 (legacy SSE encodings next to archsimd
// code pay AVX-SSE transitions; the same cause made ShiftAllRight slow in
// ocr/formula).
func withFMAOff(godebug string) (string, bool) {
	if strings.Contains(godebug, "cpu.fma=") {
		return godebug, false
	}
	if godebug != "" {
		godebug += ","
	}
	return godebug + fmaSetting, true
}
