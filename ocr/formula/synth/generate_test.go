package synth

import (
	"bytes"
	"context"
	"image"
	"image/draw"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dl4img/dl4img/ocr/expr"
	"github.com/dl4img/dl4img/ocr/formula/boxes"
)

func TestVariableDistribution(t *testing.T) {
	if n := utf8.RuneCountInString(VariableChars); n != 26 {
		t.Fatalf("%d distinct variable characters, want 26", n)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	counts := map[rune]int{}
	const n = 270000
	for range n {
		counts[randVariable(rng)]++
	}
	// 不 has 2/27 of the mass, every other character 1/27 (±5%).
	for r, c := range counts {
		want := n / 27
		if r == '不' {
			want *= 2
		}
		if c < want*95/100 || c > want*105/100 {
			t.Errorf("%c drawn %d times, want about %d", r, c, want)
		}
	}
	if len(counts) != 26 {
		t.Errorf("%d characters drawn", len(counts))
	}
}

func TestFormulaLines(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for range 2000 {
		lines := randFormulaLines(rng)
		if len(lines) < 2 || len(lines) > 3 {
			t.Fatalf("%d lines: %q", len(lines), lines)
		}
		expr := lines[len(lines)-1]
		seen := map[string]bool{}
		for _, a := range lines[:len(lines)-1] {
			name, num, ok := strings.Cut(a, "=")
			if !ok || utf8.RuneCountInString(name) != 1 || !strings.Contains(VariableChars, name) || len(num) > 5 || len(num) == 0 {
				t.Fatalf("bad assignment %q", a)
			}
			if seen[name] {
				t.Fatalf("variable assigned twice: %q", lines)
			}
			seen[name] = true
			if !strings.Contains(expr, name) {
				t.Fatalf("expression %q does not use %s", expr, name)
			}
		}
		for _, r := range strings.Join(lines, ";") {
			if !strings.ContainsRune(Charset, r) {
				t.Fatalf("character %q outside the charset in %q", r, lines)
			}
		}
		// Numbers have at most 5 digits.
		run := 0
		for _, r := range expr {
			if r >= '0' && r <= '9' {
				run++
				if run > 5 {
					t.Fatalf("number longer than 5 digits in %q", expr)
				}
			} else {
				run = 0
			}
		}
	}
}

func TestSample(t *testing.T) {
	g := testGenerator(t)
	for i := range 4 {
		s, err := g.Sample(i)
		if err != nil {
			t.Fatal(err)
		}
		b := s.Image.Bounds()
		if b.Dy() < 400 || b.Dy() > 1000 || b.Dx() < 800 || b.Dx() > 4000 {
			t.Errorf("sample %d: size %v", i, b)
		}
		v, err := expr.Final.Eval(s.Text())
		if err != nil || v.Cmp(s.Value) != 0 {
			t.Errorf("sample %d: label %q does not evaluate to its value: %v", i, s.Label(), err)
		}
		if !strings.HasSuffix(s.Label(), " "+expr.Final.Format(s.Value)) {
			t.Errorf("sample %d: label %q", i, s.Label())
		}
		if len(s.Boxes) != len(s.Lines) {
			t.Fatalf("sample %d: %d boxes for %d lines", i, len(s.Boxes), len(s.Lines))
		}
		for l, bx := range s.Boxes {
			if bx.Empty() || !bx.In(b) {
				t.Errorf("sample %d line %d: box %v outside %v", i, l, bx, b)
			}
			if l > 0 && bx.Min.Y <= s.Boxes[l-1].Max.Y {
				t.Errorf("sample %d: line %d overlaps the line above", i, l)
			}
			// The box holds the ink: its border rows are darker than the
			// background on average, the rows just outside it are not.
			if meanGray(s.Image, bx) > meanGray(s.Image, image.Rect(bx.Min.X, bx.Min.Y-6, bx.Max.X, bx.Min.Y-2))-10 {
				t.Errorf("sample %d line %d: box %v not darker than above it", i, l, bx)
			}
		}
	}
	a, _ := g.Sample(3)
	b, _ := g.Sample(3)
	if !bytes.Equal(a.Image.Pix, b.Image.Pix) || a.Label() != b.Label() {
		t.Error("Sample is not deterministic")
	}
	g2, err := NewGenerator(Config{Seed: 43})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := g2.Sample(3)
	if bytes.Equal(a.Image.Pix, c.Image.Pix) {
		t.Error("different seeds gave the same image")
	}
}

func meanGray(img image.Image, r image.Rectangle) float64 {
	g := image.NewGray(img.Bounds())
	draw.Draw(g, g.Rect, img, g.Rect.Min, draw.Src)
	r = r.Intersect(g.Rect)
	s, n := 0, 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			s += int(g.Pix[y*g.Stride+x])
			n++
		}
	}
	return float64(s) / float64(max(n, 1))
}

func TestGenerateDatasetDeterministic(t *testing.T) {
	testGenerator(t) // skips without fonts
	small := Config{Seed: 7, MaxHeight: 500, MaxWidth: 1200}
	dirs := []string{t.TempDir(), t.TempDir()}
	for i, workers := range []int{1, 3} {
		cfg := small
		cfg.Workers = workers
		calls, last := 0, 0
		err := GenerateDataset(context.Background(), cfg, dirs[i], 4, func(done, total int) {
			calls++
			if done <= last || total != 4 {
				t.Errorf("progress %d/%d after %d", done, total, last)
			}
			last = done
		})
		if err != nil {
			t.Fatal(err)
		}
		if calls != 4 {
			t.Errorf("%d progress calls", calls)
		}
	}
	for _, name := range []string{"0.png", "1.png", "2.png", "3.png", "labels.txt", "boxes.csv"} {
		a, err := os.ReadFile(filepath.Join(dirs[0], name))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dirs[1], name))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between 1 and 3 workers", name)
		}
	}
	labels, _ := os.ReadFile(filepath.Join(dirs[0], "labels.txt"))
	lines := strings.Split(strings.TrimSuffix(string(labels), "\n"), "\n")
	rows, err := boxes.Read(filepath.Join(dirs[0], "boxes.csv"))
	if err != nil {
		t.Fatal(err)
	}
	g, _ := NewGenerator(small)
	nrows := 0
	for i, l := range lines {
		s, _ := g.Sample(i)
		if l != s.Label() {
			t.Errorf("labels.txt line %d = %q, want %q", i+1, l, s.Label())
		}
		nrows += len(s.Boxes)
	}
	if len(lines) != 4 || len(rows) != nrows || rows[0].File != "0.png" || rows[0].Line != 0 {
		t.Errorf("%d labels, %d box rows (want %d), first %+v", len(lines), len(rows), nrows, rows[0])
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := GenerateDataset(ctx, small, t.TempDir(), 3, nil); err == nil {
		t.Error("cancelled generation returned no error")
	}
	if _, err := NewGenerator(Config{CJKFont: filepath.Join(t.TempDir(), "missing.ttc")}); err == nil {
		t.Error("missing CJK font accepted")
	}
}
