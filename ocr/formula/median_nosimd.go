//go:build !goexperiment.simd || !amd64

package formula

import "image"

// median5SIMD needs simd/archsimd on amd64; elsewhere Median falls back to
// the sliding histogram.
func median5SIMD(*image.Gray) (*image.Gray, bool) { return nil, false }
