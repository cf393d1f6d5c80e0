package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTransferInspect: what dl4img makes of a backbone that needs the
// legalization (GoogLeNet's ceil-mode pools), and of backbones it cannot
// take: one line naming the node, the op and the reason, exit 2, from
// inspect, features, bench onnx and job submission alike.
func TestTransferInspect(t *testing.T) {
	dir := t.TempDir()
	legal, err := filepath.Abs("../../testdata/transfer/legal")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := dl(t, dir, "transfer", "inspect", filepath.Join(legal, "googlenet-block.onnx"))
	for _, want := range []string{`input:       "input" [? 3 67 67], NCHW, 67×67 images`,
		`the input of the classifier "/fc/Gemm" (Gemm)`, "after cut:   Flatten, Gemm (2 ops)", "features:    32",
		`MaxPool ×4: ceil_mode=1 → explicit end pads`, "unsupported: none", "loads:       yes"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("inspect googlenet-block: exit %d, want %q in\n%s%s", code, want, out, errOut)
		}
	}
	out, _, code = dl(t, dir, "transfer", "inspect", filepath.Join(legal, "keras-resnet50-mini.onnx"))
	if code != 0 || !strings.Contains(out, "NHWC, 64×64 images") || !strings.Contains(out, `"reducemean_`) {
		t.Errorf("inspect keras-resnet50-mini: exit %d\n%s", code, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "corrupt.onnx"), []byte("\x08\x07garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := dl(t, dir, "-q", "gen", "cats-dogs", "--out", "cd", "-n", "2", "--test", "1", "--size", "32"); code != 0 {
		t.Fatal(errOut)
	}
	attr := filepath.Join(legal, "unsupported-attr.onnx")
	const attrErr = `unsupported-attr.onnx: node "dilated_avg" (AveragePool): attribute dilations=[2 2] is not supported`
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"transfer", "inspect", attr}, attrErr},
		{[]string{"transfer", "inspect", filepath.Join(legal, "../backbones/unsupported-op.onnx")}, `node "weird_det" (Det): op is not supported`},
		{[]string{"transfer", "inspect", "corrupt.onnx"}, "corrupt.onnx: not an ONNX model"},
		{[]string{"transfer", "inspect", "--input-size", "64", filepath.Join(legal, "googlenet-block.onnx")}, "model wants 67x67 images but input_size is 64"},
		{[]string{"transfer", "inspect"}, "want one ONNX file"},
		{[]string{"transfer", "features", "--backbone", attr, "--input-size", "32", "--out", "f.csv", "cd"}, attrErr},
		{[]string{"bench", "onnx", "--batch", "1", attr}, attrErr},
		{[]string{"run", "transfer", "--set", "backbone=" + attr, "--set", "input_size=32"}, attrErr},
	} {
		_, errOut, code := dl(t, dir, append([]string{"-q"}, c.args...)...)
		if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", c.args, code, errOut, c.want)
		}
	}
}
