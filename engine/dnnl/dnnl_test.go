//go:build !nodnnl

package dnnl

import (
	"math"
	"math/rand/v2"
	"testing"
)

// nchw describes a dense NCHW (or OIHW) tensor.
func nchw(d ...int64) Tensor {
	t := Tensor{Rank: len(d)}
	s := int64(1)
	for i := len(d) - 1; i >= 0; i-- {
		t.Dims[i], t.Strides[i] = d[i], s
		s *= d[i]
	}
	return t
}

// nhwc describes a dense NHWC tensor with logical dims N, C, H, W.
func nhwc(n, c, h, w int64) Tensor {
	return Tensor{Rank: 4, Dims: [5]int64{n, c, h, w}, Strides: [5]int64{h * w * c, 1, w * c, c}}
}

func at(t Tensor, buf []float32, idx ...int64) float32 {
	o := int64(0)
	for i, v := range idx {
		o += v * t.Strides[i]
	}
	return buf[o]
}

func random(n int64, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]float32, n)
	for i := range b {
		b[i] = float32(r.NormFloat64())
	}
	return b
}

// refConv is the textbook loop (one group).
func refConv(s ConvSpec, src, wei []float32) []float32 {
	n, c, o := s.Src.Dims[0], s.Src.Dims[1], s.Dst.Dims[1]
	oh, ow := s.Dst.Dims[2], s.Dst.Dims[3]
	kh, kw := s.Wei.Dims[2], s.Wei.Dims[3]
	ih, iw := s.Src.Dims[2], s.Src.Dims[3]
	out := make([]float32, s.Dst.Size())
	for b := range n {
		for oc := range o {
			for y := range oh {
				for x := range ow {
					var acc float64
					for ic := range c {
						for ty := range kh {
							for tx := range kw {
								iy := y*s.Strides[0] + ty*(s.Dilates[0]+1) - s.PadL[0]
								ix := x*s.Strides[1] + tx*(s.Dilates[1]+1) - s.PadL[1]
								if iy < 0 || iy >= ih || ix < 0 || ix >= iw {
									continue
								}
								acc += float64(at(s.Src, src, b, ic, iy, ix)) * float64(at(s.Wei, wei, oc, ic, ty, tx))
							}
						}
					}
					out[b*s.Dst.Strides[0]+oc*s.Dst.Strides[1]+y*s.Dst.Strides[2]+x*s.Dst.Strides[3]] = float32(acc)
				}
			}
		}
	}
	return out
}

func TestConvForward(t *testing.T) {
	l, err := Open(2)
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []bool{false, true} {
		for _, layout := range []string{"nchw", "nhwc"} {
			src, dst := nchw(2, 5, 9, 11), nchw(2, 7, 5, 6)
			if layout == "nhwc" {
				src, dst = nhwc(2, 5, 9, 11), nhwc(2, 7, 5, 6)
			}
			s := ConvSpec{Src: src, Wei: nchw(7, 5, 3, 3), Dst: dst, Strides: [2]int64{2, 2},
				PadL: [2]int64{1, 1}, PadR: [2]int64{1, 1}, Plain: plain}
			op, err := l.Conv(s)
			if err != nil {
				t.Fatal(err)
			}
			x, k := random(src.Size(), 1), random(s.Wei.Size(), 2)
			y := make([]float32, dst.Size())
			if err := l.Exec(op, x, k, y); err != nil {
				t.Fatal(err)
			}
			want := refConv(s, x, k)
			for i := range y {
				if math.Abs(float64(y[i]-want[i])) > 1e-4 {
					t.Fatalf("%s plain=%v (%s): y[%d] = %g, want %g", layout, plain, op.Impl(), i, y[i], want[i])
				}
			}
		}
	}
}
