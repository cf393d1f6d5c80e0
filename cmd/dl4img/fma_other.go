//go:build !(goexperiment.simd && amd64)

package main

// avoidSlowExp is needed only in GOEXPERIMENT=simd builds on amd64.
func avoidSlowExp() {}
