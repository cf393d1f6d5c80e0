//go:build goexperiment.simd

package lines

import "simd/archsimd"

// Vector kernels for the stages around the median. Each handles a prefix of
// its row and returns how many elements it did; the caller finishes the
// rest with the scalar loop, which is also the whole path without AVX2 (or
// AVX-512 where noted) or the simd experiment.

var (
	hasAVX2   = archsimd.X86.AVX2()
	hasAVX512 = archsimd.X86.AVX512()
)

// grayRGBAVec converts opaque RGBA pixels (4 bytes each) to luma with the
// exact integer formula of luma: 16 pixels per step as 32-bit lanes.
// Bytes are moved with VPSHUFB rather than shifted: VPSRLD by a constant
// ran two orders of magnitude slower here. AVX-512.
func grayRGBAVec(dst, src []uint8) int {
	if !hasAVX512 {
		return 0
	}
	n := min(len(dst), len(src)/4) &^ 15
	pick := func(b int8) archsimd.Int8x64 {
		var idx [64]int8
		for i := range idx {
			idx[i] = -1
			if i%4 == 0 {
				idx[i] = int8(i%16) + b
			}
		}
		return archsimd.LoadInt8x64Slice(idx[:])
	}
	pr, pg, pb, pHi := pick(0), pick(1), pick(2), pick(2)
	wr := archsimd.BroadcastUint32x16(19595)
	wg := archsimd.BroadcastUint32x16(38470)
	wb := archsimd.BroadcastUint32x16(7471)
	half := archsimd.BroadcastUint32x16(1 << 15)
	for x := 0; x < n; x += 16 {
		v := archsimd.LoadUint8x64Slice(src[4*x:])
		r := v.PermuteOrZeroGrouped(pr).AsUint32x16()
		g := v.PermuteOrZeroGrouped(pg).AsUint32x16()
		b := v.PermuteOrZeroGrouped(pb).AsUint32x16()
		s := r.Mul(wr).Add(g.Mul(wg)).Add(b.Mul(wb)).Add(half)
		// The result is byte 2 of each lane (>> 16).
		s.AsUint8x64().PermuteOrZeroGrouped(pHi).AsUint32x16().TruncateToUint8().StoreSlice(dst[x:])
	}
	archsimd.ClearAVXUpperBits()
	return n
}

// minRowVec sets dst[i] = min(a[i], b[i]) (max if isMax), 32 at a time.
func minMaxRowVec(dst, a, b []uint8, isMax bool) int {
	if !hasAVX2 {
		return 0
	}
	n := min(len(dst), len(a), len(b)) &^ 31
	if isMax {
		for x := 0; x < n; x += 32 {
			archsimd.LoadUint8x32Slice(a[x:]).Max(archsimd.LoadUint8x32Slice(b[x:])).StoreSlice(dst[x:])
		}
	} else {
		for x := 0; x < n; x += 32 {
			archsimd.LoadUint8x32Slice(a[x:]).Min(archsimd.LoadUint8x32Slice(b[x:])).StoreSlice(dst[x:])
		}
	}
	archsimd.ClearAVXUpperBits()
	return n
}

// shiftOpVec sets dst[i] = op(a[i], a[i+s]) for i < len(dst), 32 at a time
// (a must hold len(dst)+s elements).
func shiftOpVec(dst, a []uint8, s int, isMax bool) int {
	if !hasAVX2 {
		return 0
	}
	n := min(len(dst), len(a)-s) &^ 31
	if isMax {
		for x := 0; x < n; x += 32 {
			archsimd.LoadUint8x32Slice(a[x:]).Max(archsimd.LoadUint8x32Slice(a[x+s:])).StoreSlice(dst[x:])
		}
	} else {
		for x := 0; x < n; x += 32 {
			archsimd.LoadUint8x32Slice(a[x:]).Min(archsimd.LoadUint8x32Slice(a[x+s:])).StoreSlice(dst[x:])
		}
	}
	archsimd.ClearAVXUpperBits()
	return n
}

// downscale4Vec averages 4×4 blocks of rows r0..r3 into dst (rounded like
// Downscale: (sum+8)>>4), 8 outputs per 32 input columns: pairwise byte
// sums (VPMADDUBSW with ones), four rows added, then pairwise 16-bit sums
// (VPMADDWD) give the block sums in order. AVX-512 (for the truncation).
func downscale4Vec(dst, r0, r1, r2, r3 []uint8) int {
	if !hasAVX512 {
		return 0
	}
	n := min(len(dst), len(r0)/4, len(r1)/4, len(r2)/4, len(r3)/4) &^ 7
	ones8 := archsimd.BroadcastInt8x32(1)
	ones16 := archsimd.BroadcastInt16x16(1)
	eight := archsimd.BroadcastUint32x8(8)
	// (s+8)>>4 as a high multiply by 1<<12: sums stay below 1<<16, so the
	// 32-bit lanes' high halves are zero (see grayRGBAVec on shifts).
	div16 := archsimd.BroadcastUint16x16(1 << 12)
	for x := 0; x < n; x += 8 {
		i := 4 * x
		s := archsimd.LoadUint8x32Slice(r0[i:]).DotProductPairsSaturated(ones8).
			Add(archsimd.LoadUint8x32Slice(r1[i:]).DotProductPairsSaturated(ones8)).
			Add(archsimd.LoadUint8x32Slice(r2[i:]).DotProductPairsSaturated(ones8)).
			Add(archsimd.LoadUint8x32Slice(r3[i:]).DotProductPairsSaturated(ones8))
		t := s.DotProductPairs(ones16).AsUint32x8().Add(eight).AsUint16x16().MulHigh(div16).AsUint32x8()
		var buf [16]uint8
		t.TruncateToUint8().Store(&buf)
		copy(dst[x:x+8], buf[:8])
	}
	archsimd.ClearAVXUpperBits()
	return n
}
