//go:build !nodnnl

package dnnl

import (
	"fmt"
	"testing"
)

// BenchmarkConv times one 3x3 "same" convolution layer of the captcha CNN
// (batch 32, 32->32 channels, 80x170) in each direction, for both caller
// layouts, with oneDNN's blocked layouts (and reorders) or on the caller's
// layout directly. GFLOP/s counts 2 per multiply-add.
func BenchmarkConv(b *testing.B) {
	l, err := Open(0)
	if err != nil {
		b.Fatal(err)
	}
	const n, c, o, h, w = 32, 32, 32, 80, 170
	for _, layout := range []string{"nchw", "nhwc"} {
		for _, plain := range []bool{false, true} {
			for _, prop := range []ConvProp{ConvForward, ConvBackwardData, ConvBackwardWeights} {
				src, dst := nchw(n, c, h, w), nchw(n, o, h, w)
				if layout == "nhwc" {
					src, dst = nhwc(n, c, h, w), nhwc(n, o, h, w)
				}
				s := ConvSpec{Prop: prop, Src: src, Wei: nchw(o, c, 3, 3), Dst: dst, Strides: [2]int64{1, 1},
					PadL: [2]int64{1, 1}, PadR: [2]int64{1, 1}, Plain: plain}
				name := fmt.Sprintf("%s/plain=%v/%s", layout, plain, []string{"fwd", "bwd_data", "bwd_weights"}[prop])
				b.Run(name, func(b *testing.B) {
					op, err := l.Conv(s)
					if err != nil {
						b.Skip(err)
					}
					x, k, y := random(src.Size(), 1), random(s.Wei.Size(), 2), random(dst.Size(), 3)
					args := map[ConvProp][]any{ConvForward: {x, k, y}, ConvBackwardData: {y, k, x}, ConvBackwardWeights: {x, y, k}}[prop]
					b.ResetTimer()
					for range b.N {
						if err := l.Exec(op, args...); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(2*float64(n*o*h*w*c*9)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					b.ReportMetric(0, "ns/op")
					b.Log(op.Impl())
				})
			}
		}
	}
}
