//go:build !goexperiment.simd || !amd64

package lines

import "image"

// median5SIMD needs simd/archsimd on amd64; elsewhere Median falls back to
// the sliding histogram.
func median5SIMD(*image.Gray) (*image.Gray, bool) { return nil, false }

func grayRGBAVec(dst, src []uint8) int                 { return 0 }
func minMaxRowVec(dst, a, b []uint8, isMax bool) int   { return 0 }
func shiftOpVec(dst, a []uint8, s int, isMax bool) int { return 0 }
func downscale4Vec(dst, r0, r1, r2, r3 []uint8) int    { return 0 }

const hasAVX2 = false

func median5SIMDInto(*image.Gray, []uint8) (*image.Gray, bool) { return nil, false }
