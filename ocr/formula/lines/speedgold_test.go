package lines

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestExtractGolden guards speed work on the extractor, which must not
// change its output: FORMULA_GOLDEN=FILE records every box and a hash of
// every strip of qualitySet's samples (default 50) into FILE when it does
// not exist, and otherwise compares against it line by line.
func TestExtractGolden(t *testing.T) {
	path := os.Getenv("FORMULA_GOLDEN")
	if path == "" {
		t.Skip("set FORMULA_GOLDEN to a file to record or compare")
	}
	g, from, n := qualitySet(t, 50)
	e := NewExtractor()
	var got []string
	for i := from; i < from+n; i++ {
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
