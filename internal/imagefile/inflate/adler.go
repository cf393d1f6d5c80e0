package inflate

import "encoding/binary"

// adler32sum is hash/adler32.Checksum computed 32 bytes per step with
// 16-bit lanes in uint64s (SWAR). For bytes b_0..b_31 of a step, s2 gains
// 32·s1 + Σ (32-i)·b_i and s1 gains Σ b_i. Byte k of word j weighs
// 8·(3-j) + (8-k): the first part is a weighted sum of the words' byte
// sums, the second a multiplication of the even and odd bytes (as 16-bit
// lanes, summed over the 4 words) by lane weights that gathers the result
// in the top lane. Every lane sum stays below 2^16, so no carry crosses
// lanes. About 1 instruction per byte instead of hash/adler32's 6.
func adler32sum(p []byte) uint32 {
	const (
		mod = 65521
		// 64-bit sums overflow only after about 2^28 bytes.
		nmax = 1 << 20
		lo   = 0x00ff00ff00ff00ff
		ones = 0x0001000100010001
		// Lane i of the even bytes holds b_{2i}, of the odd ones
		// b_{2i+1}; b_k weighs 8-k, and lane i reaches the top lane
		// through the multiplier's lane 3-i.
		wEven = 8<<48 | 6<<32 | 4<<16 | 2
		wOdd  = 7<<48 | 5<<32 | 3<<16 | 1
	)
	s1, s2 := uint64(1), uint64(0)
	for len(p) > 0 {
		q := p[:min(len(p), nmax)]
		p = p[len(q):]
		for ; len(q) >= 32; q = q[32:] {
			v0 := binary.LittleEndian.Uint64(q[0:8])
			v1 := binary.LittleEndian.Uint64(q[8:16])
			v2 := binary.LittleEndian.Uint64(q[16:24])
			v3 := binary.LittleEndian.Uint64(q[24:32])
			e0, o0 := v0&lo, v0>>8&lo
			e1, o1 := v1&lo, v1>>8&lo
			e2, o2 := v2&lo, v2>>8&lo
			e3, o3 := v3&lo, v3>>8&lo
			even, odd := e0+e1+e2+e3, o0+o1+o2+o3
			words := 3*(e0+o0) + 2*(e1+o1) + (e2 + o2)
			s2 += 32*s1 + 8*(words*ones>>48) + (even*wEven+odd*wOdd)>>48
			s1 += (even + odd) * ones >> 48
		}
		for _, b := range q {
			s1 += uint64(b)
			s2 += s1
		}
		s1 %= mod
		s2 %= mod
	}
	return uint32(s2<<16 | s1)
}
