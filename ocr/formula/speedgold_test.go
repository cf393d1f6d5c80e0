package formula

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestExtractGolden guards speed work on the extractor, which must not
// change its output: FORMULA_GOLDEN=FILE records, for the first
// FORMULA_QUALITY_N generated samples (seed FORMULA_QUALITY_SEED, default
// 42), every box and a hash of every strip into FILE when it does not exist,
// and otherwise compares against it line by line.
func TestExtractGolden(t *testing.T) {
	path := os.Getenv("FORMULA_GOLDEN")
	if path == "" {
		t.Skip("set FORMULA_GOLDEN to a file to record or compare")
	}
	n, seed := 50, uint64(42)
	if v, err := strconv.Atoi(os.Getenv("FORMULA_QUALITY_N")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.ParseUint(os.Getenv("FORMULA_QUALITY_SEED"), 10, 64); err == nil {
		seed = v
	}
	g, err := NewGenerator(Config{Seed: seed})
	if err != nil {
		t.Skipf("formula fonts unavailable: %v", err)
	}
	e := NewExtractor()
	var got []string
	for i := range n {
		s, err := g.Sample(i)
		if err != nil {
			t.Fatal(err)
		}
		strip, boxes, err := e.Extract(s.Image, nil)
		line := fmt.Sprintf("%d %v err=%v", i, boxes, err)
		if strip != nil {
			line += fmt.Sprintf(" strip %v %x", strip.Rect, sha256.Sum256(strip.Pix))
		}
		got = append(got, line)
	}
	want, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		if err := os.WriteFile(path, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %d samples in %s", n, path)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(want)))
	sc.Buffer(nil, 1<<20)
	i, bad := 0, 0
	for sc.Scan() {
		if i >= len(got) {
			t.Fatalf("%s has more than %d lines", path, len(got))
		}
		if sc.Text() != got[i] {
			bad++
			if bad <= 5 {
				t.Errorf("sample %d:\n got %s\nwant %s", i, got[i], sc.Text())
			}
		}
		i++
	}
	if i != len(got) {
		t.Fatalf("%s has %d lines, want %d", path, i, len(got))
	}
	if bad > 0 {
		t.Fatalf("%d of %d samples differ", bad, len(got))
	}
}
