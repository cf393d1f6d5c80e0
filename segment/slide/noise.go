package slide

// Deterministic, position-addressable noise: every value is a pure function
// of (seed, integer coordinates), so any tile of a synthetic slide can be
// generated on its own, in any order, on any goroutine.

func hash3(seed uint64, x, y int64) uint64 {
	h := seed ^ 0x9e3779b97f4a7c15
	h ^= uint64(x) * 0xbf58476d1ce4e5b9
	h = (h ^ (h >> 31)) * 0x94d049bb133111eb
	h ^= uint64(y) * 0xd6e8feb86659fd93
	h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9
	return h ^ (h >> 32)
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

func smooth(t float64) float64 { return t * t * (3 - 2*t) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// valueNoise is smooth noise in [0, 1) with lattice period `period` pixels,
// evaluated at integer pixel coordinates.
func valueNoise(seed uint64, x, y, period int64) float64 {
	ix, iy := floorDiv(x, period), floorDiv(y, period)
	fx := smooth(float64(x-ix*period) / float64(period))
	fy := smooth(float64(y-iy*period) / float64(period))
	a := unit(hash3(seed, ix, iy))
	b := unit(hash3(seed, ix+1, iy))
	c := unit(hash3(seed, ix, iy+1))
	d := unit(hash3(seed, ix+1, iy+1))
	top := a + (b-a)*fx
	bot := c + (d-c)*fx
	return top + (bot-top)*fy
}

// fbm sums octaves of value noise, halving the period and the amplitude each
// octave; the result stays in [0, 1).
func fbm(seed uint64, x, y, period int64, octaves int) float64 {
	sum, amp, norm := 0.0, 1.0, 0.0
	for o := 0; o < octaves && period >= 2; o++ {
		sum += amp * valueNoise(seed+uint64(o)*0x632be59bd9b4e019, x, y, period)
		norm += amp
		amp *= 0.5
		period /= 2
	}
	return sum / norm
}
