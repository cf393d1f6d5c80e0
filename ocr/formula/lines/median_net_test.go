package lines

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// The kernel computes two output rows, y and y+1, at once: their windows
// share rows y-1..y+2. A row pass sorts each column of those four rows
// (sort4Net); the kernel then merges the five sorted columns of a window
// far enough to know ranks 7..12 of the 20 shared values (shared by both
// outputs), sorts the five values of each output's own extra row (y-2 or
// y+3) and picks each median as
//
//	max(C7, min(C8,E4), min(C9,E3), min(C10,E2), min(C11,E1), min(C12,E0))
//
// (the 13th smallest of sorted C ∪ sorted E). Comparators that never swap
// on column-sorted inputs are dropped, the rest pruned to the outputs.

// sort4Net sorts 4 values (an optimal network, 5 comparators).
var sort4Net = [][2]int{{0, 1}, {2, 3}, {0, 2}, {1, 3}, {1, 2}}

// sort5Net sorts 5 values (an optimal network, 9 comparators).
var sort5Net = [][2]int{{0, 1}, {3, 4}, {2, 4}, {2, 3}, {0, 3}, {0, 2}, {1, 4}, {1, 3}, {1, 2}}

// oddEvenMerge appends Batcher's odd-even merge of positions lo..lo+n-1
// (n a power of two) with stride r.
func oddEvenMerge(lo, n, r int, out [][2]int) [][2]int {
	step := 2 * r
	if step >= n {
		return append(out, [2]int{lo, lo + r})
	}
	out = oddEvenMerge(lo, n, step, out)
	out = oddEvenMerge(lo+r, n, step, out)
	for i := lo + r; i+r < lo+n; i += step {
		out = append(out, [2]int{i, i + r})
	}
	return out
}

// mergeWires merges the sorted wires a and b: both are padded with +inf to
// a power of two (comparators with an infinite input only move wires and
// are dropped). It returns the comparators, min to the first wire, and the
// wires holding ranks 0, 1, … of the result.
func mergeWires(a, b []int) ([][2]int, []int) {
	m := 1
	for m < max(len(a), len(b)) {
		m *= 2
	}
	pos := make([]int, 2*m)
	for i := range pos {
		pos[i] = -1
	}
	copy(pos, a)
	copy(pos[m:], b)
	var ops [][2]int
	for _, c := range oddEvenMerge(0, 2*m, 1, nil) {
		x, y := pos[c[0]], pos[c[1]]
		switch {
		case y < 0:
		case x < 0:
			pos[c[0]], pos[c[1]] = y, -1
		default:
			ops = append(ops, [2]int{x, y})
		}
	}
	var out []int
	for _, w := range pos {
		if w >= 0 {
			out = append(out, w)
		}
	}
	return ops, out
}

// Inputs of the pair kernel: wire 4c+r is rank r of column c of the
// shared rows (sorted), 20+c the extra row above (output A), 25+c the one
// below (output B).
const pairInputs = 30

// ssaOp is one vector instruction: value = min(a, b), or max if isMax.
type ssaOp struct {
	isMax bool
	a, b  int
}

// medianPair is the kernel as straight-line code: values 0..pairInputs-1
// are the inputs, value pairInputs+k is ops[k].
type medianPair struct {
	ops        []ssaOp
	outA, outB int
}

// pairCases calls f for each block of 64 column-sorted 0/1 inputs: in[w]
// is wire w's bit per lane, wantA and wantB the medians' bits.
func pairCases(f func(in *[pairInputs]uint64, wantA, wantB uint64)) {
	var in [pairInputs]uint64
	const extra = 1 << 10
	for ts := range 5 * 5 * 5 * 5 * 5 {
		// ts in base 5: how many zeros each sorted column starts with.
		shared, d := 0, ts
		for c := range 5 {
			z := d % 5
			d /= 5
			shared += 4 - z
			for r := range 4 {
				in[4*c+r] = 0
				if r >= z {
					in[4*c+r] = ^uint64(0)
				}
			}
		}
		for ex0 := 0; ex0 < extra; ex0 += 64 {
			var wantA, wantB uint64
			for e := range 10 {
				in[20+e] = 0
			}
			for l := range 64 {
				ex := ex0 + l
				for e := range 10 {
					in[20+e] |= uint64(ex>>e&1) << l
				}
				onesA := shared + bitsOn(ex&31)
				onesB := shared + bitsOn(ex>>5)
				wantA |= b2u(onesA >= 13) << l
				wantB |= b2u(onesB >= 13) << l
			}
			f(&in, wantA, wantB)
		}
	}
}

func bitsOn(v int) int {
	n := 0
	for ; v != 0; v &= v - 1 {
		n++
	}
	return n
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// buildMedianPair generates the pair kernel.
func buildMedianPair() medianPair {
	var cas [][2]int
	merge := func(a, b []int) []int {
		ops, out := mergeWires(a, b)
		cas = append(cas, ops...)
		return out
	}
	var cols [5][]int
	for c := range cols {
		cols[c] = []int{4 * c, 4*c + 1, 4*c + 2, 4*c + 3}
	}
	common := merge(merge(merge(cols[0], cols[1]), cols[2]), merge(cols[3], cols[4]))
	for _, base := range []int{20, 25} {
		for _, c := range sort5Net {
			cas = append(cas, [2]int{base + c[0], base + c[1]})
		}
	}
	// Drop the comparators that never swap on column-sorted inputs (by
	// the 0-1 principle they never swap on any such input).
	swaps := make([]bool, len(cas))
	pairCases(func(in *[pairInputs]uint64, _, _ uint64) {
		v := *in
		for k, c := range cas {
			a, b := v[c[0]], v[c[1]]
			if a&^b != 0 {
				swaps[k] = true
			}
			v[c[0]], v[c[1]] = a&b, a|b
		}
	})
	var ops []ssaOp
	val := func(isMax bool, a, b int) int {
		ops = append(ops, ssaOp{isMax, a, b})
		return pairInputs + len(ops) - 1
	}
	var slot [pairInputs]int
	for i := range slot {
		slot[i] = i
	}
	for k, c := range cas {
		if swaps[k] {
			a, b := slot[c[0]], slot[c[1]]
			slot[c[0]], slot[c[1]] = val(false, a, b), val(true, a, b)
		}
	}
	pick := func(extra int) int {
		m := slot[common[7]]
		for j := range 5 {
			m = val(true, m, val(false, slot[common[12-j]], slot[extra+j]))
		}
		return m
	}
	outA, outB := pick(20), pick(25)
	// Keep what the outputs depend on, renumbered in order.
	live := make([]bool, pairInputs+len(ops))
	live[outA], live[outB] = true, true
	for k := len(ops) - 1; k >= 0; k-- {
		if live[pairInputs+k] {
			live[ops[k].a], live[ops[k].b] = true, true
		}
	}
	id := make([]int, len(live))
	for i := range pairInputs {
		id[i] = i
	}
	var kept []ssaOp
	for k, o := range ops {
		if live[pairInputs+k] {
			kept = append(kept, ssaOp{o.isMax, id[o.a], id[o.b]})
			id[pairInputs+k] = pairInputs + len(kept) - 1
		}
	}
	return medianPair{kept, id[outA], id[outB]}
}

// TestMedianPairNetwork checks the kernel's network on every column-sorted
// 0/1 input (the 0-1 principle holds for inputs closed under thresholding,
// and column-sorted inputs are), 64 inputs per word, min = AND, max = OR;
// and the column sort on every 0/1 input.
func TestMedianPairNetwork(t *testing.T) {
	for in := range 16 {
		v := [4]int{in & 1, in >> 1 & 1, in >> 2 & 1, in >> 3 & 1}
		for _, c := range sort4Net {
			v[c[0]], v[c[1]] = min(v[c[0]], v[c[1]]), max(v[c[0]], v[c[1]])
		}
		if v[0] > v[1] || v[1] > v[2] || v[2] > v[3] {
			t.Fatalf("sort4Net leaves %v from input %04b", v, in)
		}
	}
	net := buildMedianPair()
	t.Logf("%d min/max per 32 pixel pairs (plus 10 per 32 columns for the column sort)", len(net.ops))
	vals := make([]uint64, pairInputs+len(net.ops))
	bad := 0
	pairCases(func(in *[pairInputs]uint64, wantA, wantB uint64) {
		copy(vals, in[:])
		for k, o := range net.ops {
			if o.isMax {
				vals[pairInputs+k] = vals[o.a] | vals[o.b]
			} else {
				vals[pairInputs+k] = vals[o.a] & vals[o.b]
			}
		}
		if vals[net.outA] != wantA || vals[net.outB] != wantB {
			bad++
		}
	})
	if bad > 0 {
		t.Fatalf("%d blocks of 64 inputs with a wrong median", bad)
	}
}

// genMedian5Body renders the network as the straight-line body of
// median5PairRow in median_simd_amd64.go.
func genMedian5Body() string {
	net := buildMedianPair()
	used := make([]bool, pairInputs)
	for _, o := range net.ops {
		for _, v := range []int{o.a, o.b} {
			if v < pairInputs {
				used[v] = true
			}
		}
	}
	var b strings.Builder
	for w := range pairInputs {
		if !used[w] {
			continue
		}
		switch {
		case w < 20:
			fmt.Fprintf(&b, "\t\tv%d := archsimd.LoadUint8x32((*[32]uint8)(p%d[%d:]))\n", w, w%4, w/4)
		case w < 25:
			fmt.Fprintf(&b, "\t\tv%d := archsimd.LoadUint8x32((*[32]uint8)(pa[%d:]))\n", w, w-20)
		default:
			fmt.Fprintf(&b, "\t\tv%d := archsimd.LoadUint8x32((*[32]uint8)(pb[%d:]))\n", w, w-25)
		}
	}
	for k, o := range net.ops {
		op := "Min"
		if o.isMax {
			op = "Max"
		}
		fmt.Fprintf(&b, "\t\tv%d := v%d.%s(v%d)\n", pairInputs+k, o.a, op, o.b)
	}
	fmt.Fprintf(&b, "\t\tv%d.Store(qa)\n\t\tv%d.Store(qb)\n", net.outA, net.outB)
	return b.String()
}

const (
	genBegin = "\t\t// BEGIN generated by TestMedian5Generated\n"
	genEnd   = "\t\t// END generated\n"
)

// TestMedian5Generated keeps the SIMD kernel in step with the verified
// network; FORMULA_REGEN=1 rewrites it.
func TestMedian5Generated(t *testing.T) {
	const path = "median_simd_amd64.go"
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i, j := bytes.Index(src, []byte(genBegin)), bytes.Index(src, []byte(genEnd))
	if i < 0 || j < i {
		t.Fatalf("%s: generated section markers missing", path)
	}
	body := genMedian5Body()
	if string(src[i+len(genBegin):j]) == body {
		return
	}
	if os.Getenv("FORMULA_REGEN") == "" {
		t.Fatalf("%s is out of date with buildMedianPair; rerun with FORMULA_REGEN=1", path)
	}
	out := append(append(append([]byte{}, src[:i+len(genBegin)]...), body...), src[j:]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}
