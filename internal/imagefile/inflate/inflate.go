// Package inflate decompresses whole in-memory zlib streams (RFC 1950,
// deflate data as in RFC 1951) into a caller-sized buffer, faster than the
// io.Reader-based inflaters (compress/flate, klauspost/compress): with the
// whole input and output at hand it refills a 64-bit bit buffer 8 bytes at
// a time, decodes each literal or length with one table lookup and copies
// back-references within the output itself, with no window to maintain.
//
// It accepts and rejects exactly what compress/zlib does when the output
// fits the buffer (tested against it, fuzzed), and never reads or writes
// out of bounds on any input.
package inflate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

var (
	// ErrTooMuchData means the stream holds more data than len(dst).
	ErrTooMuchData = errors.New("inflate: output exceeds the destination buffer")
	// ErrHeader means the 2-byte zlib header is invalid or asks for a
	// preset dictionary.
	ErrHeader = errors.New("inflate: invalid zlib header")
	// ErrChecksum means the data decoded but its Adler-32 differs from the
	// stream's trailer.
	ErrChecksum = errors.New("inflate: Adler-32 checksum mismatch")
	// ErrCorrupt means invalid deflate data (the message says what and
	// where); truncated streams wrap io.ErrUnexpectedEOF instead.
	ErrCorrupt = errors.New("corrupt deflate data")
)

// Zlib decompresses the zlib stream in src into dst and returns the number
// of bytes written. It checks the header and the Adler-32 trailer; bytes
// after the trailer are ignored, as compress/zlib does. A stream holding
// more than len(dst) bytes gives ErrTooMuchData; a complete stream holding
// fewer gives n < len(dst) and no error. On error n is the number of bytes
// decoded so far (a lower bound, for error messages), and dst beyond the
// valid output may have been written (the fast copy overshoots by a few
// bytes).
func Zlib(dst, src []byte) (n int, err error) {
	if len(src) < 2 {
		return 0, fmt.Errorf("inflate: zlib header: %w", io.ErrUnexpectedEOF)
	}
	cmf, flg := src[0], src[1]
	if cmf&0x0f != 8 || cmf>>4 > 7 || (uint(cmf)<<8|uint(flg))%31 != 0 {
		return 0, ErrHeader
	}
	if flg&0x20 != 0 {
		return 0, fmt.Errorf("%w: preset dictionary not supported", ErrHeader)
	}
	d := decoderPool.Get().(*decoder)
	defer func() {
		d.src, d.dst = nil, nil
		decoderPool.Put(d)
	}()
	d.src, d.pos, d.bits, d.nb = src[2:], 0, 0, 0
	d.dst, d.out = dst, 0
	d.block = 0
	if err := d.inflate(); err != nil {
		return d.out, err
	}
	// The trailer starts at the byte after the last bit used.
	p := 2 + d.pos - int(d.nb>>3)
	if len(src)-p < 4 {
		return d.out, fmt.Errorf("inflate: Adler-32 trailer: %w", io.ErrUnexpectedEOF)
	}
	if binary.BigEndian.Uint32(src[p:]) != adler32sum(dst[:d.out]) {
		return d.out, ErrChecksum
	}
	return d.out, nil
}

var decoderPool = sync.Pool{New: func() any { return new(decoder) }}

type decoder struct {
	src  []byte
	pos  int    // next byte of src to load; past len(src) counts zero padding
	bits uint64 // bit buffer, LSB first; bits above nb are 0 or the input's next bits
	nb   uint   // valid bits in bits, < 64
	dst  []byte
	out  int
	// block counts blocks from 0, for error messages.
	block int

	lit  [litTableSize]uint32
	dist [distTableSize]uint32
	clen [clenTableSize]uint32
	lens [numLitLen + numDist]uint8
}

// refill makes nb ≥ 56. Past the end of src it shifts in zero bytes,
// counted in pos; overrun tells whether any of those were consumed.
func (d *decoder) refill() {
	if d.pos <= len(d.src)-8 {
		d.bits |= binary.LittleEndian.Uint64(d.src[d.pos:]) << (d.nb & 63)
		d.pos += int((63 - d.nb) >> 3)
		d.nb |= 56
		return
	}
	for d.nb < 56 {
		if d.pos < len(d.src) {
			d.bits |= uint64(d.src[d.pos]) << (d.nb & 63)
		}
		d.pos++
		d.nb += 8
	}
}

// overrun reports whether the bits consumed so far go past the input.
func (d *decoder) overrun() bool {
	return uint64(d.pos)*8-uint64(d.nb) > uint64(len(d.src))*8
}

// take consumes n ≤ 32 bits (nb must be ≥ n).
func (d *decoder) take(n uint) uint32 {
	v := uint32(d.bits & (1<<(n&63) - 1))
	d.bits >>= n & 63
	d.nb -= n
	return v
}

func (d *decoder) errorf(format string, args ...any) error {
	if d.overrun() {
		return fmt.Errorf("inflate: block %d: %w", d.block, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("inflate: block %d (output byte %d): %w: %s", d.block, d.out, ErrCorrupt, fmt.Sprintf(format, args...))
}

func (d *decoder) eof() error {
	return fmt.Errorf("inflate: block %d: %w", d.block, io.ErrUnexpectedEOF)
}

func (d *decoder) inflate() error {
	for ; ; d.block++ {
		d.refill()
		hdr := d.take(3)
		final := hdr&1 != 0
		var err error
		switch hdr >> 1 {
		case 0:
			err = d.stored()
		case 1:
			err = d.huffman(&fixedLit, &fixedDist)
		case 2:
			if err = d.dynamicTables(); err == nil {
				err = d.huffman(&d.lit, &d.dist)
			}
		default:
			err = d.errorf("invalid block type 3")
		}
		if err != nil {
			return err
		}
		if d.overrun() {
			return d.eof()
		}
		if final {
			return nil
		}
	}
}

func (d *decoder) stored() error {
	// Skip to the byte boundary and give the whole bytes still in the bit
	// buffer back to the input.
	d.nb -= d.nb & 7
	d.pos -= int(d.nb >> 3)
	d.bits, d.nb = 0, 0
	if d.pos > len(d.src)-4 {
		return d.eof()
	}
	n := int(binary.LittleEndian.Uint16(d.src[d.pos:]))
	if nn := int(binary.LittleEndian.Uint16(d.src[d.pos+2:])); nn != n^0xffff {
		return d.errorf("stored block length %d, complement %d", n, nn)
	}
	d.pos += 4
	if n > len(d.src)-d.pos {
		return d.eof()
	}
	if n > len(d.dst)-d.out {
		return fmt.Errorf("inflate: block %d: %w", d.block, ErrTooMuchData)
	}
	copy(d.dst[d.out:], d.src[d.pos:d.pos+n])
	d.out += n
	d.pos += n
	return nil
}

// codeOrder is the order of the code-length code lengths (RFC 1951 3.2.7).
var codeOrder = [numCodeLen]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamicTables reads a dynamic block's code descriptions and builds
// d.lit and d.dist, with compress/flate's validity rules.
func (d *decoder) dynamicTables() error {
	d.refill()
	nlit := int(d.take(5)) + 257
	ndist := int(d.take(5)) + 1
	nclen := int(d.take(4)) + 4
	if nlit > 286 {
		return d.errorf("%d literal/length codes", nlit)
	}
	if ndist > 30 {
		return d.errorf("%d distance codes", ndist)
	}
	var cl [numCodeLen]uint8
	for i := range nclen {
		if d.nb < 3 {
			d.refill()
		}
		cl[codeOrder[i]] = uint8(d.take(3))
	}
	if !buildTable(d.clen[:], clenBits, cl[:], clenBase[:]) {
		return d.errorf("invalid code-length code")
	}
	lens := d.lens[:nlit+ndist]
	for i := 0; i < len(lens); {
		if d.nb < 14 { // a code (≤ 7 bits) and its repeat bits (≤ 7)
			d.refill()
		}
		e := d.clen[d.bits&(clenTableSize-1)]
		if e&flagExc != 0 {
			return d.errorf("invalid code-length code")
		}
		d.take(uint(e & 0xff))
		sym := e >> 16
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var v uint8
		switch sym {
		case 16:
			if i == 0 {
				return d.errorf("code length repeat with no previous length")
			}
			v = lens[i-1]
			rep = 3 + int(d.take(2))
		case 17:
			rep = 3 + int(d.take(3))
		default:
			rep = 11 + int(d.take(7))
		}
		if rep > len(lens)-i {
			return d.errorf("code length repeat past the %d codes", len(lens))
		}
		for range rep {
			lens[i] = v
			i++
		}
	}
	if d.overrun() {
		return d.eof()
	}
	if !buildTable(d.lit[:], litBits, lens[:nlit], litLenBase[:]) {
		return d.errorf("invalid literal/length code")
	}
	pairLiterals(d.lit[:], litBits)
	if !buildTable(d.dist[:], distBits, lens[nlit:], distBase[:]) {
		return d.errorf("invalid distance code")
	}
	return nil
}

const (
	// fastOutMargin is the output room the fast loop needs per iteration:
	// up to 8 literals stored as one 8-byte word, then a 258-byte match
	// copied in 8-byte words (up to 7 bytes over).
	fastOutMargin = 8 + 258 + 8
	// fastInMargin lets the fast loop refill twice per iteration with
	// whole 8-byte loads.
	fastInMargin = 16
)

// huffman decodes one Huffman-coded block's symbols up to its end-of-block
// code.
func (d *decoder) huffman(lt *[litTableSize]uint32, dt *[distTableSize]uint32) error {
	for {
		if done, err := d.huffmanFast(lt, dt); done {
			return err
		}
		// Near the end of the input or of dst: one symbol at a time,
		// with every check.
		if done, err := d.huffmanSlow(lt, dt); done {
			return err
		}
	}
}

// huffmanFast decodes while the input holds fastInMargin bytes and dst
// fastOutMargin bytes of room, so that refills are whole 8-byte loads and
// copies need no bounds checks of their own. It returns done at the end of
// the block or on an error.
func (d *decoder) huffmanFast(lt *[litTableSize]uint32, dt *[distTableSize]uint32) (done bool, err error) {
	src, pos, bits, nb := d.src, d.pos, d.bits, d.nb
	dst, out := d.dst, d.out
	// No deferred write-back of the locals: a closure over them would keep
	// them in memory instead of registers.
	for pos <= len(src)-fastInMargin && out <= len(dst)-fastOutMargin {
		bits |= binary.LittleEndian.Uint64(src[pos:]) << (nb & 63)
		pos += int((63 - nb) >> 3)
		nb |= 56
		e := lt[bits&(1<<litBits-1)]
		if e&flagLit != 0 {
			// Main-table literal entries consume ≤ litBits bits, so 4
			// of them (≤ 8 bytes) fit the ≥ 56 bits; their bytes are
			// gathered in a word and stored at once.
			bits >>= e & 63
			nb -= uint(e & 0xff)
			lits := uint64(e >> 16)
			k := uint(e>>8) & 3
			e = lt[bits&(1<<litBits-1)]
			if e&flagLit != 0 {
				bits >>= e & 63
				nb -= uint(e & 0xff)
				lits |= uint64(e>>16) << (k * 8 & 63)
				k += uint(e>>8) & 3
				e = lt[bits&(1<<litBits-1)]
				if e&flagLit != 0 {
					bits >>= e & 63
					nb -= uint(e & 0xff)
					lits |= uint64(e>>16) << (k * 8 & 63)
					k += uint(e>>8) & 3
					e = lt[bits&(1<<litBits-1)]
					if e&flagLit != 0 {
						bits >>= e & 63
						nb -= uint(e & 0xff)
						lits |= uint64(e>>16) << (k * 8 & 63)
						k += uint(e>>8) & 3
						binary.LittleEndian.PutUint64(dst[out:], lits)
						out += int(k)
						continue
					}
				}
			}
			binary.LittleEndian.PutUint64(dst[out:], lits)
			out += int(k)
			// A length and distance need up to 48 bits.
			bits |= binary.LittleEndian.Uint64(src[pos:]) << (nb & 63)
			pos += int((63 - nb) >> 3)
			nb |= 56
		}
		if e&flagExc != 0 {
			if e&flagSub != 0 {
				bits >>= e & 63
				nb -= uint(e & 0xff)
				e = lt[uint(e>>16)+uint(bits&(1<<((e>>8)&15)-1))]
				if e&flagLit != 0 {
					bits >>= e & 63
					nb -= uint(e & 0xff)
					dst[out] = byte(e >> 16) // subtable literals are single
					out++
					continue
				}
			}
			if e&flagExc != 0 {
				if e&flagEOB != 0 {
					bits >>= e & 63
					nb -= uint(e & 0xff)
					d.pos, d.bits, d.nb, d.out = pos, bits, nb, out
					return true, nil
				}
				d.pos, d.bits, d.nb, d.out = pos, bits, nb, out
				return true, d.errorf("invalid literal/length code")
			}
		}
		// Length: base plus extra bits.
		saved := bits
		bits >>= e & 63
		nb -= uint(e & 0xff)
		length := int(e>>16) + int((saved&(1<<(e&63)-1))>>((e>>8)&15))

		de := dt[bits&(1<<distBits-1)]
		if de&flagExc != 0 {
			if de&flagSub == 0 {
				d.pos, d.bits, d.nb, d.out = pos, bits, nb, out
				return true, d.errorf("invalid distance code")
			}
			bits >>= de & 63
			nb -= uint(de & 0xff)
			de = dt[uint(de>>16)+uint(bits&(1<<((de>>8)&15)-1))]
			if de&flagExc != 0 {
				d.pos, d.bits, d.nb, d.out = pos, bits, nb, out
				return true, d.errorf("invalid distance code")
			}
		}
		saved = bits
		bits >>= de & 63
		nb -= uint(de & 0xff)
		dist := int(de>>16) + int((saved&(1<<(de&63)-1))>>((de>>8)&15))
		if dist > out {
			d.pos, d.bits, d.nb, d.out = pos, bits, nb, out
			return true, d.errorf("distance %d before the start of the output", dist)
		}
		copyMatch(dst, out, dist, length)
		out += length
	}
	d.pos, d.bits, d.nb, d.out = pos, bits, nb, out
	return false, nil
}

// copyMatch copies a back-reference within dst; dst must have 7 bytes of
// room past out+length for the word-wise copy.
func copyMatch(dst []byte, out, dist, length int) {
	from := out - dist
	switch {
	case dist >= 8:
		// Each 8-byte load reads bytes already written.
		for i := 0; i < length; i += 8 {
			binary.LittleEndian.PutUint64(dst[out+i:], binary.LittleEndian.Uint64(dst[from+i:]))
		}
	case dist == 1:
		v := uint64(dst[from]) * 0x0101010101010101
		for i := 0; i < length; i += 8 {
			binary.LittleEndian.PutUint64(dst[out+i:], v)
		}
	default:
		s := dst[from : out+length]
		for i := dist; i < len(s); i++ {
			s[i] = s[i-dist]
		}
	}
}

// huffmanSlow decodes one symbol with every bounds check (or a few
// literals), for the end of the input or of dst.
func (d *decoder) huffmanSlow(lt *[litTableSize]uint32, dt *[distTableSize]uint32) (done bool, err error) {
	d.refill()
	e := lt[d.bits&(1<<litBits-1)]
	if e&(flagExc|flagSub) == flagExc|flagSub {
		d.take(uint(e & 0xff))
		e = lt[uint(e>>16)+uint(d.bits&(1<<((e>>8)&15)-1))]
	}
	switch {
	case e&flagLit != 0:
		d.take(uint(e & 0xff))
		if d.overrun() {
			return true, d.eof()
		}
		n := int(e>>8) & 3
		if n > len(d.dst)-d.out {
			return true, fmt.Errorf("inflate: block %d: %w", d.block, ErrTooMuchData)
		}
		d.dst[d.out] = byte(e >> 16)
		if n == 2 {
			d.dst[d.out+1] = byte(e >> 24)
		}
		d.out += n
		return false, nil
	case e&flagEOB != 0:
		d.take(uint(e & 0xff))
		if d.overrun() {
			return true, d.eof()
		}
		return true, nil
	case e&flagExc != 0:
		return true, d.errorf("invalid literal/length code")
	}
	length := int(e>>16) + int(d.take(uint(e&0xff))>>((e>>8)&15))
	de := dt[d.bits&(1<<distBits-1)]
	if de&(flagExc|flagSub) == flagExc|flagSub {
		d.take(uint(de & 0xff))
		de = dt[uint(de>>16)+uint(d.bits&(1<<((de>>8)&15)-1))]
	}
	if de&flagExc != 0 {
		return true, d.errorf("invalid distance code")
	}
	dist := int(de>>16) + int(d.take(uint(de&0xff))>>((de>>8)&15))
	if d.overrun() {
		return true, d.eof()
	}
	if dist > d.out {
		return true, d.errorf("distance %d before the start of the output", dist)
	}
	if length > len(d.dst)-d.out {
		return true, fmt.Errorf("inflate: block %d: %w", d.block, ErrTooMuchData)
	}
	s := d.dst[d.out-dist : d.out+length]
	for i := dist; i < len(s); i++ {
		s[i] = s[i-dist]
	}
	d.out += length
	return false, nil
}
