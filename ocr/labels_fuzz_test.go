package ocr

import (
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/internal/fuzzguard"
)

// FuzzLabels feeds labels.txt lines to LoadLabeled, with the options of
// arith-ctc (charset, length, values checked) and of a named-format folder
// with no charset. Every line is accepted or rejected with one line naming
// labels.txt and its line; nothing panics or hangs; accepted samples name
// images inside the folder.
func FuzzLabels(f *testing.F) {
	for _, seed := range []string{
		"(3-7)+5 1\n1+2 3\n",
		"0.png (3-7)+5 1\n1.png 9*9 81\n",
		"a.png 1+2\nb.png ((1)) 1\n\n",
		"\xef\xbb\xbf1+2 3\r\n1/0 1\r\n",
		"../../etc/passwd.png 1+2\n/abs.png 1\n0.png 1 2 3 4\n",
		"9*9*9*9*9*9*9*9*9*9*9*9*9*9 1\n" + strings.Repeat("(", 5000) + " 1\n",
		"0.png 1+2 3.000\n0.png 1+2 3\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	img := image.NewGray(image.Rect(0, 0, 8, 4))
	for _, name := range []string{"0.png", "1.png", "a.png"} {
		fh, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		png.Encode(fh, img)
		fh.Close()
	}
	os.WriteFile(filepath.Join(dir, "b.png"), []byte("\x89PNG\r\n\x1a\ncorrupt"), 0o644)
	opts := []LoadOptions{
		{Charset: ArithCharset, MaxLen: ArithMaxTextLen, Width: 8, Height: 4, CheckValues: true},
		{Format: FormatNamed},
		{HeaderOnly: true, CheckValues: true},
	}
	f.Fuzz(func(t *testing.T, labels []byte) {
		defer fuzzguard.Deadline()()
		if err := os.WriteFile(filepath.Join(dir, LabelsFile), labels, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, opt := range opts {
			d, err := LoadLabeled(context.Background(), dir, opt)
			if err != nil {
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error is not one line: %q", err)
				}
				continue
			}
			for _, e := range d.Bad {
				if msg := e.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, LabelsFile+":") {
					t.Fatalf("rejection %q: want one line naming %s:LINE", msg, LabelsFile)
				}
			}
			for _, s := range d.Samples {
				if rel, err := filepath.Rel(dir, s.Path); err != nil || !filepath.IsLocal(rel) {
					t.Fatalf("sample %q outside the folder", s.Path)
				}
			}
		}
	})
}
