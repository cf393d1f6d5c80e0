package ocr

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writePNG writes a flat w×h PNG.
func writePNG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	img.Set(0, 0, color.Gray{Y: 10})
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// folder builds a dataset directory: files maps a name to "WxH" for a PNG
// of that size or to raw content.
func folder(t *testing.T, labels string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if labels != "-" {
		if err := os.WriteFile(filepath.Join(dir, LabelsFile), []byte(labels), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, spec := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		switch spec {
		case "180x60":
			writePNG(t, p, 180, 60)
		case "170x80":
			writePNG(t, p, 170, 80)
		default:
			os.WriteFile(p, []byte(spec), 0o644)
		}
	}
	return dir
}

func TestLoadLabeled(t *testing.T) {
	ok3 := map[string]string{"0.png": "180x60", "1.png": "180x60", "2.png": "180x60"}
	arith := LoadOptions{Charset: ArithCharset, MaxLen: 7, Width: 180, Height: 60, CheckValues: true}
	tests := []struct {
		name   string
		labels string
		files  map[string]string
		opt    LoadOptions
		format LabelFormat
		good   []string // "name text value"
		errs   []string // substrings of Bad, in order
	}{
		{
			name:   "competition",
			labels: "(3-7)+5 1\n3-9*7 -60\n2*3 6\n",
			files:  ok3, opt: arith, format: FormatIndexed,
			good: []string{"0.png (3-7)+5 1", "1.png 3-9*7 -60", "2.png 2*3 6"},
		},
		{
			name:   "crlf_bom_no_final_newline",
			labels: "\ufeff1+1 2\r\n2+2 4\r\n3+3 6",
			files:  ok3, opt: arith, format: FormatIndexed,
			good: []string{"0.png 1+1 2", "1.png 2+2 4", "2.png 3+3 6"},
		},
		{
			name:   "bad_lines",
			labels: "1+1 3\n2+a 4\n\n3+3 6 9\n4+ 4\n123+4567 5690\n",
			files:  map[string]string{"0.png": "180x60", "1.png": "180x60", "2.png": "180x60", "3.png": "180x60", "4.png": "180x60", "5.png": "180x60"},
			opt:    arith, format: FormatIndexed,
			errs: []string{
				"labels.txt:1: value 3 does not match 1+1 = 2",
				`labels.txt:2: label "2+a": unknown characters "a"`,
				"labels.txt:3: empty line: 2.png has no label",
				"labels.txt:4: want \"label [value]\", got 3 fields",
				"labels.txt:5: label \"4+\": unexpected end",
				"labels.txt:6: label \"123+4567\" has 8 characters, more than 7",
			},
		},
		{
			name:   "bad_images",
			labels: "1+1 2\n2+2 4\n3+3 6\n4+4 8\n",
			files:  map[string]string{"0.png": "180x60", "1.png": "170x80", "2.png": "garbage"},
			opt:    arith, format: FormatIndexed,
			good: []string{"0.png 1+1 2"},
			errs: []string{
				"labels.txt:2: image 1.png: is 170x80, want 180x60",
				"labels.txt:3: image 2.png: unreadable",
				"labels.txt:4: image 3.png: missing",
			},
		},
		{
			name:   "header_only_size",
			labels: "1+1\n2+2\n",
			files:  map[string]string{"0.png": "180x60", "1.png": "170x80"},
			opt:    LoadOptions{Width: 180, HeaderOnly: true}, format: FormatIndexed,
			good: []string{"0.png 1+1 "},
			errs: []string{"labels.txt:2: image 1.png: is 170x80, want 180xany"},
		},
		{
			name:   "value_not_a_number",
			labels: "1+1 two\n",
			files:  map[string]string{"0.png": "180x60"},
			opt:    arith, format: FormatIndexed,
			errs: []string{`labels.txt:1: value "two" is not a decimal number`},
		},
		{
			name:   "unchecked_value_kept",
			labels: "1+1 3\n",
			files:  map[string]string{"0.png": "180x60"},
			opt:    LoadOptions{}, format: FormatIndexed,
			good: []string{"0.png 1+1 3"},
		},
		{
			name:   "named",
			labels: "b.png ABCD\n\nsub/a.png 0O0O\n",
			files:  map[string]string{"b.png": "170x80", "sub/a.png": "170x80"},
			opt:    LoadOptions{Charset: CaptchaCharset, Width: 170, Height: 80}, format: FormatNamed,
			good: []string{"b.png ABCD ", "sub/a.png 0O0O "},
		},
		{
			name:   "named_errors",
			labels: "a.png ABCD\na.png ABCE\nb.png\n../x.png ABCD\nc.png abcd\nd.png ABCD\n",
			files:  map[string]string{"a.png": "170x80", "c.png": "170x80"},
			opt:    LoadOptions{Charset: CaptchaCharset}, format: FormatNamed,
			good: []string{"a.png ABCD "},
			errs: []string{
				"labels.txt:2: image a.png already labeled on line 1",
				"labels.txt:3: want \"filename label [value]\", got 1 fields",
				"labels.txt:4: image name \"../x.png\" must be a path inside",
				`labels.txt:5: label "abcd": unknown characters "abcd"`,
				"labels.txt:6: image d.png: missing",
			},
		},
		{
			name:   "forced_format",
			labels: "x.png AB\n",
			files:  map[string]string{"0.png": "170x80"},
			opt:    LoadOptions{Format: FormatIndexed}, format: FormatIndexed,
			errs: []string{`labels.txt:1: value "AB" is not a decimal number`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := folder(t, tc.labels, tc.files)
			d, err := LoadLabeled(context.Background(), dir, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if d.Format != tc.format {
				t.Errorf("format %q, want %q", d.Format, tc.format)
			}
			var good []string
			for _, s := range d.Samples {
				good = append(good, s.Name+" "+s.Text+" "+s.Value)
				if s.Path != filepath.Join(dir, s.Name) {
					t.Errorf("path %s", s.Path)
				}
			}
			if strings.Join(good, "|") != strings.Join(tc.good, "|") {
				t.Errorf("samples\n %q\nwant\n %q", good, tc.good)
			}
			if len(d.Bad) != len(tc.errs) {
				t.Fatalf("bad %v, want %d errors", d.Bad, len(tc.errs))
			}
			for i, e := range d.Bad {
				if !strings.Contains(e.Error(), tc.errs[i]) {
					t.Errorf("error %d %q, want it to contain %q", i, e.Error(), tc.errs[i])
				}
			}
			if (d.Err() == nil) != (len(tc.errs) == 0) {
				t.Errorf("Err() = %v", d.Err())
			}
		})
	}
}

func TestLoadLabeledFatal(t *testing.T) {
	if _, err := LoadLabeled(context.Background(), t.TempDir(), LoadOptions{}); err == nil {
		t.Error("missing labels.txt accepted")
	}
	dir := folder(t, "1+1\n", map[string]string{"0.png": "180x60"})
	if _, err := LoadLabeled(context.Background(), dir, LoadOptions{Format: "csv"}); err == nil {
		t.Error("unknown format accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LoadLabeled(ctx, dir, LoadOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled load: %v", err)
	}
}

func TestDatasetErrSummary(t *testing.T) {
	var lines strings.Builder
	for range 15 {
		lines.WriteString("x\n")
	}
	d, err := LoadLabeled(context.Background(), folder(t, lines.String(), nil), LoadOptions{Charset: "0"})
	if err != nil {
		t.Fatal(err)
	}
	msg := d.Err().Error()
	if !strings.Contains(msg, "15 bad samples") || !strings.Contains(msg, "and 5 more") || !strings.Contains(msg, "labels.txt:10:") {
		t.Errorf("summary:\n%s", msg)
	}
}

func TestLoadTestDir(t *testing.T) {
	dir := folder(t, "-", map[string]string{
		"10.png": "180x60", "2.png": "180x60", "0.png": "180x60", "1.png": "garbage",
		"notes.png": "180x60", "3.jpg": "x", "labels.csv": "x",
	})
	d, err := LoadTestDir(context.Background(), dir, LoadOptions{Width: 180, Height: 60})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range d.Samples {
		names = append(names, s.Name)
		if s.Text != "" || s.Line != 0 {
			t.Errorf("unlabeled sample %+v", s)
		}
	}
	if got := strings.Join(names, ","); got != "0.png,2.png,10.png" {
		t.Errorf("order %s", got)
	}
	if d.Labeled || len(d.Bad) != 1 || !strings.HasPrefix(d.Bad[0].Error(), "1.png: image 1.png: unreadable") {
		t.Errorf("labeled %v, bad %v", d.Labeled, d.Bad)
	}

	// With labels.txt it is a labeled dataset.
	dir = folder(t, "1+1 2\n", map[string]string{"0.png": "180x60"})
	d, err = LoadTestDir(context.Background(), dir, LoadOptions{})
	if err != nil || !d.Labeled || len(d.Samples) != 1 || d.Samples[0].Text != "1+1" {
		t.Errorf("labeled test dir: %+v, %v", d, err)
	}
	if _, err := LoadTestDir(context.Background(), filepath.Join(dir, "nope"), LoadOptions{}); err == nil {
		t.Error("missing directory accepted")
	}
}
