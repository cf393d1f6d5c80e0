package onnxlegal

import (
	"fmt"
	"os"
	"testing"
)

// largeModel is a synthetic 100 MB model with the rewrites a real one
// needs: 24 1×1 convolutions of 1024×1024 weights (4 MiB each), each
// followed by HardSwish and every fourth by a ceil-mode max pool, and a
// ConvTranspose whose 4 MiB kernel the rewrite flips into a new
// initializer.
func largeModel(tb testing.TB) []byte {
	tb.Helper()
	const c = 1024
	var inits []*Tensor
	var nodes []*Node
	h := "x"
	for i := range 24 {
		w := &Tensor{Name: fmt.Sprintf("w%d", i), DType: Float32, Dims: []int64{c, c, 1, 1}, data: make([]byte, 4*c*c)}
		inits = append(inits, w)
		conv := fmt.Sprintf("conv%d", i)
		nodes = append(nodes, node(conv, "Conv", []string{h, w.Name}, []string{conv}, intsAttr("kernel_shape", 1, 1)))
		act := fmt.Sprintf("act%d", i)
		nodes = append(nodes, node(act, "HardSwish", []string{conv}, []string{act}))
		h = act
		if i%4 == 3 {
			pool := fmt.Sprintf("pool%d", i)
			nodes = append(nodes, node(pool, "MaxPool", []string{h}, []string{pool}, intsAttr("kernel_shape", 3, 3),
				intsAttr("strides", 2, 2), intAttr("ceil_mode", 1)))
			h = pool
		}
	}
	wt := &Tensor{Name: "wt", DType: Float32, Dims: []int64{c, c / 4, 2, 2}, data: make([]byte, 4*c*c)}
	inits = append(inits, wt)
	nodes = append(nodes, node("up", "ConvTranspose", []string{h, "wt"}, []string{"y"}, intsAttr("strides", 2, 2)))
	return model(tb, 13, []int64{-1, c, 33, 33}, inits, nodes...)
}

// BenchmarkLegalize times what legalization adds to loading a 100 MB
// model: reading the protobuf, rewriting (shape inference, the
// ConvTranspose kernel's flip) and writing the bytes the import parses.
// The target is under 1 s. DL4IMG_ONNX=FILE.onnx times a real
// file instead (the input's dims as the file gives them, batch unknown).
func BenchmarkLegalize(b *testing.B) {
	raw := largeModel(b)
	if f := os.Getenv("DL4IMG_ONNX"); f != "" {
		var err error
		if raw, err = os.ReadFile(f); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for range b.N {
		m, err := Read(raw)
		if err != nil {
			b.Fatal(err)
		}
		in := m.Inputs()[0]
		dims := append([]int64{-1}, in.Dims[1:]...)
		rep, err := m.Legalize(Options{Inputs: map[string][]int64{in.Name: dims}})
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.Rewrites) > 0 {
			_ = m.Bytes()
		}
	}
	b.ReportMetric(float64(len(raw))/1e6, "MB")
}
