package transfer

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/dl4img/dl4img/internal/fuzzguard"
	"github.com/dl4img/dl4img/tasks"
)

// tensorProto is a TensorProto in wire format: dims, data type, name and
// raw data.
func tensorProto(name string, dtype int64, raw []byte, dims ...int64) []byte {
	var b []byte
	for _, d := range dims {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d))
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(dtype))
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

// withInitializer appends an initializer to the graph of an ONNX model (a
// second graph field, which protobuf merges into the first).
func withInitializer(model, tensor []byte) []byte {
	g := protowire.AppendTag(nil, 5, protowire.BytesType)
	g = protowire.AppendBytes(g, tensor)
	out := append([]byte(nil), model...)
	out = protowire.AppendTag(out, 7, protowire.BytesType)
	return protowire.AppendBytes(out, g)
}

// A tiny file that declares a huge weight is refused before onnx-gomlx
// allocates it (it asked for 4 TB and the process died).
func TestONNXTensorBomb(t *testing.T) {
	cases := map[string][]byte{
		"huge":     tensorProto("w", 1, []byte{1, 2, 3, 4}, 1000000, 1000000),
		"short":    tensorProto("w", 1, make([]byte, 12), 2, 2),
		"overflow": tensorProto("w", 1, nil, 1<<40, 1<<40),
		"negative": tensorProto("w", 1, nil, 4, int64(-3)),
		"dtype":    tensorProto("w", 99, make([]byte, 4), 1),
	}
	dir := t.TempDir()
	backend, _, err := tasks.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	for name, tensor := range cases {
		path := filepath.Join(dir, name+".onnx")
		if err := os.WriteFile(path, withInitializer(demoONNX, tensor), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadBackbone(backend, path, BackbonePresets["tinycnn"], "")
		if err == nil || !strings.Contains(err.Error(), "not a usable ONNX model: tensor \"w\"") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The real file passes the check.
	if err := checkONNXTensors(demoONNX); err != nil {
		t.Fatal(err)
	}
}

// FuzzONNX feeds model bytes to the import (LoadBackbone: the node list,
// the feature cut, the size and layout check, the weights) and to
// parseImageModel with the model's own size. Nothing panics, allocates
// beyond what the file holds, or fails with more than one line.
func FuzzONNX(f *testing.F) {
	f.Add(demoONNX)
	f.Add(demoONNX[:len(demoONNX)/2])
	f.Add(withInitializer(demoONNX, tensorProto("w", 1, []byte{1, 2, 3, 4}, 1000000, 1000000)))
	f.Add(withInitializer(demoONNX, tensorProto("h", 10, make([]byte, 6), 3)))
	gap := binary.AppendUvarint(protowire.AppendTag(nil, 7, protowire.BytesType), 1<<40)
	f.Add(gap)
	backend, _, err := tasks.NewBackend("go")
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, model []byte) {
		defer fuzzguard.Deadline()()
		path := filepath.Join(dir, "m.onnx")
		if err := os.WriteFile(path, model, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, err := range []error{
			func() error { _, err := LoadBackbone(backend, path, BackbonePresets["tinycnn"], ""); return err }(),
			func() error { _, err := parseImageModel(path, 0); return err }(),
		} {
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		}
	})
}
