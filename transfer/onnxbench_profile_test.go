package transfer

import (
	"context"
	"os"
	"strconv"
	"testing"
)

// TestProfileONNX benchmarks the ONNX file in ONNX_PROFILE (batch
// ONNX_PROFILE_BATCH, default 16; 3 batches) for go test -cpuprofile; it is skipped otherwise.
func TestProfileONNX(t *testing.T) {
	path := os.Getenv("ONNX_PROFILE")
	if path == "" {
		t.Skip("set ONNX_PROFILE=model.onnx")
	}
	batch := 16
	if b, err := strconv.Atoi(os.Getenv("ONNX_PROFILE_BATCH")); err == nil {
		batch = b
	}
	r, err := BenchONNX(context.Background(), goBackend(t), path, batch, 0, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
}
