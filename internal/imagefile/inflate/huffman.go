package inflate

import "math/bits"

// Decode table entries are uint32s that tell the decoder everything about a
// symbol with one lookup:
//
//	bits  0-7   bits to consume: code length plus extra bits
//	bits  8-11  code length (the extra bits start there); for literals,
//	            the number of literals (1 or 2, see pairLiterals)
//	bits 12-15  flags
//	bits 16-31  value: literal byte, length or distance base, or the start
//	            of a subtable
//
// A main-table entry for codes longer than the table's index holds
// flagSub, the subtable's start and its index width in the code-length
// field, and consumes the main table's bits.
const (
	flagLit = 1 << 12 // a literal byte (litlen tables)
	flagExc = 1 << 13 // not a literal nor a length/distance: see below
	flagSub = 1 << 14 // with flagExc: a subtable pointer
	flagEOB = 1 << 15 // with flagExc: end of block (litlen tables)
	// flagExc alone marks an invalid code.

	litBits  = 11 // litlen main table index width
	distBits = 8  // distance main table index width
	clenBits = 7  // code-length code table index width (its longest code)

	// Worst-case table sizes with subtables ("enough" in zlib's
	// examples/enough.c, as used by zlib and libdeflate): 288 symbols with an
	// 11-bit root, 32 symbols with an 8-bit root, 15-bit codes.
	litTableSize  = 2342
	distTableSize = 402
	clenTableSize = 1 << clenBits

	maxCodeLen = 15
	numLitLen  = 288 // including the two the fixed code defines but never uses
	numDist    = 32
	numCodeLen = 19

	invalidEntry = flagExc
)

// litLenBase and distBase hold each symbol's entry before the code length is
// added: value<<16 | flags | extra bits (in the consume field).
var litLenBase, distBase, clenBase [numLitLen]uint32

func init() {
	for s := range 256 {
		litLenBase[s] = uint32(s)<<16 | flagLit | 1<<8
	}
	litLenBase[256] = flagExc | flagEOB
	// RFC 1951 3.2.5: lengths 3..258.
	base := uint32(3)
	for s := 257; s < 285; s++ {
		extra := uint32(0)
		if s >= 265 {
			extra = uint32(s-261) / 4
		}
		litLenBase[s] = base<<16 | extra
		base += 1 << extra
	}
	litLenBase[285] = 258 << 16
	litLenBase[286], litLenBase[287] = invalidEntry, invalidEntry
	// Distances 1..32768.
	base = 1
	for s := range 30 {
		extra := uint32(0)
		if s >= 4 {
			extra = uint32(s-2) / 2
		}
		distBase[s] = base<<16 | extra
		base += 1 << extra
	}
	distBase[30], distBase[31] = invalidEntry, invalidEntry
	for s := range numCodeLen {
		clenBase[s] = uint32(s) << 16
	}
}

// buildTable fills table with the decode entries of the canonical Huffman
// code given by lengths (RFC 1951 3.2.2), using a main table of rootBits
// and subtables after it for longer codes. It accepts exactly the codes
// compress/flate accepts: complete ones, a single code of length 1 (the
// other 1-bit pattern decodes as invalid) and the empty code (everything
// invalid). It reports false for over-subscribed or other incomplete codes.
func buildTable(table []uint32, rootBits uint, lengths []uint8, base []uint32) bool {
	var count [maxCodeLen + 1]int
	for _, l := range lengths {
		count[l]++
	}
	count[0] = 0
	left := 1
	maxLen := 0
	for l := 1; l <= maxCodeLen; l++ {
		left <<= 1
		left -= count[l]
		if left < 0 {
			return false // over-subscribed
		}
		if count[l] != 0 {
			maxLen = l
		}
	}
	rootSize := 1 << rootBits
	if maxLen == 0 {
		fillInvalid(table[:rootSize])
		return true
	}
	if left != 0 {
		if !(maxLen == 1 && count[1] == 1) {
			return false // incomplete
		}
		fillInvalid(table[:rootSize])
	}

	// Canonical order: by length, then by symbol.
	var offs [maxCodeLen + 2]int
	for l := 1; l <= maxCodeLen; l++ {
		offs[l+1] = offs[l] + count[l]
	}
	var sorted [numLitLen]uint16
	for s, l := range lengths {
		if l != 0 {
			sorted[offs[l]] = uint16(s)
			offs[l]++
		}
	}
	code := 0 // the next code, MSB-first, of the current length
	i := 0
	l := 1
	// Codes that fit the main table: replicate each over the index bits
	// it does not use.
	for ; l <= int(rootBits) && l <= maxLen; l++ {
		stride := 1 << l
		for c := count[l]; c > 0; c-- {
			s := sorted[i]
			i++
			e := base[s] + uint32(l)
			if e&flagLit == 0 {
				e += uint32(l) << 8
			}
			for j := int(bits.Reverse16(uint16(code)) >> (16 - l)); j < rootSize; j += stride {
				table[j] = e
			}
			code++
		}
		code <<= 1
	}
	if maxLen <= int(rootBits) {
		return true
	}
	// Longer codes: codes sharing their first rootBits bits are
	// contiguous in canonical order; each such group gets a subtable wide
	// enough for the longest of them.
	var remaining [maxCodeLen + 1]int
	copy(remaining[:], count[:])
	next := rootSize
	rootMask := rootSize - 1
	prefix := -1
	subStart, subBits := 0, 0
	for ; l <= maxLen; l++ {
		for c := count[l]; c > 0; c-- {
			s := sorted[i]
			i++
			rev := int(bits.Reverse16(uint16(code)) >> (16 - l))
			if p := rev & rootMask; p != prefix {
				// New subtable: grow its width while the codes
				// of the next lengths do not fill it.
				prefix = p
				subBits = l - int(rootBits)
				need := 1 << subBits
				for subBits+int(rootBits) < maxLen {
					need -= remaining[subBits+int(rootBits)]
					if need <= 0 {
						break
					}
					subBits++
					need <<= 1
				}
				subStart = next
				next += 1 << subBits
				if next > len(table) {
					return false // cannot happen with the sizes above
				}
				table[p] = uint32(subStart)<<16 | flagExc | flagSub | uint32(subBits)<<8 | uint32(rootBits)
			}
			sl := l - int(rootBits)
			e := base[s] + uint32(sl)
			if e&flagLit == 0 {
				e += uint32(sl) << 8
			}
			sub := table[subStart : subStart+1<<subBits]
			for j := rev >> rootBits; j < len(sub); j += 1 << sl {
				sub[j] = e
			}
			remaining[l]--
			code++
		}
		code <<= 1
	}
	return true
}

// pairLiterals turns the main-table entries of a literal whose code is
// followed, within the index bits, by another literal's whole code into one
// entry for both: value l1 | l2<<8, count 2, consuming both codes. Filtered
// noisy images code most literals in 4-6 bits, so this halves the lookups.
func pairLiterals(t []uint32, rootBits uint) {
	t = t[:1<<rootBits]
	// Descending, so that t[i>>l1] (≤ i) is still a single entry. The
	// pairing test is branch-free: which entries pair follows no pattern
	// a branch predictor could learn, and this runs for every block.
	for i := len(t) - 1; i >= 0; i-- {
		e := t[i]
		l1 := e & 0xff
		e2 := t[i>>(l1&31)]
		l2 := e2 & 0xff
		pair := flagLit | 2<<8 | (l1 + l2) | (e>>16)<<16 | (e2>>16)<<24
		// All ones when both are literals and both codes fit the index.
		both := (e & e2 & flagLit) >> 12
		fits := uint32(int32(uint32(rootBits)-l1-l2)>>31) + 1
		m := -(both & fits)
		t[i] = e ^ (e^pair)&m
	}
}

func fillInvalid(t []uint32) {
	for i := range t {
		t[i] = invalidEntry
	}
}

// The fixed code (RFC 1951 3.2.6), built once.
var fixedLit [litTableSize]uint32
var fixedDist [distTableSize]uint32

func init() {
	var lengths [numLitLen]uint8
	for i := range lengths {
		switch {
		case i < 144:
			lengths[i] = 8
		case i < 256:
			lengths[i] = 9
		case i < 280:
			lengths[i] = 7
		default:
			lengths[i] = 8
		}
	}
	if !buildTable(fixedLit[:], litBits, lengths[:], litLenBase[:]) {
		panic("inflate: fixed litlen code")
	}
	var dl [numDist]uint8
	for i := range dl {
		dl[i] = 5
	}
	if !buildTable(fixedDist[:], distBits, dl[:], distBase[:]) {
		panic("inflate: fixed distance code")
	}
}
