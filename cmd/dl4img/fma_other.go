//go:build !(goexperiment.simd && amd64)

package main

// withFMAOff: only GOEXPERIMENT=simd builds on amd64 need cpu.fma=off.
func withFMAOff(godebug string) (string, bool) { return godebug, false }
