package transfer

import (
	"context"
	"os"
	"testing"

	"github.com/dl4img/dl4img/goconv"
)

// TestProfileONNX benchmarks the ONNX file in ONNX_PROFILE (batch 16,
// 3 batches) for go test -cpuprofile; it is skipped otherwise.
func TestProfileONNX(t *testing.T) {
	path := os.Getenv("ONNX_PROFILE")
	if path == "" {
		t.Skip("set ONNX_PROFILE=model.onnx")
	}
	r, err := BenchONNX(context.Background(), goconv.Wrap(goBackend(t)), path, 16, 0, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
}
