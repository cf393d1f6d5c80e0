package ocr

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dl4img/dl4img/internal/imagefile"
	_ "golang.org/x/image/bmp"

	"github.com/dl4img/dl4img/ocr/expr"
)

// LabelsFile is the competition's label file name.
const LabelsFile = "labels.txt"

// LabelFormat says how labels.txt lines name their images.
type LabelFormat string

const (
	// FormatAuto picks FormatNamed when the first field of the first
	// non-empty line ends in an image extension, else FormatIndexed.
	FormatAuto LabelFormat = "auto"
	// FormatIndexed: line k (1-based) is "label [value]" for image (k-1).png,
	// the preliminary round's "expression result".
	FormatIndexed LabelFormat = "indexed"
	// FormatNamed: "filename label [value]".
	FormatNamed LabelFormat = "named"
)

// LoadOptions says what a valid sample is. Zero fields disable their check.
type LoadOptions struct {
	Format  LabelFormat // "" means FormatAuto
	Charset string      // every label character must be in it
	MaxLen  int         // longest label, in characters
	Width   int         // required image size
	Height  int
	// CheckValues requires a value given in labels.txt to equal the label
	// evaluated with expr.Prelim (after its rounding).
	CheckValues bool
	// HeaderOnly reads only image headers (size, format) instead of decoding
	// every image: much faster, but truncated pixel data goes unnoticed.
	HeaderOnly bool
	// LabelsFile overrides "labels.txt".
	LabelsFile string
}

// Sample is one usable image of a dataset.
type Sample struct {
	Line  int    // 1-based line in labels.txt; 0 without labels.txt
	Name  string // file name relative to the dataset directory
	Path  string
	Text  string // "" when unlabeled
	Value string // value from labels.txt in expr.Prelim.Format form; "" if none
}

// LineError is one rejected line or image.
type LineError struct {
	File string // "labels.txt", or the image name when there is no labels.txt
	Line int    // 1-based; 0 when not from labels.txt
	Err  error
}

func (e *LineError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// Dataset is a folder of images with (optionally) their labels. Samples
// keep labels.txt order (numeric file order without labels.txt); Bad holds
// what validation rejected, so a caller can fail or skip (skip_bad).
type Dataset struct {
	Dir     string
	Format  LabelFormat // "" when there is no labels.txt
	Labeled bool
	Samples []Sample
	Bad     []*LineError
}

// Err is nil when nothing was rejected, else one error listing the first
// rejections.
func (d *Dataset) Err() error {
	if len(d.Bad) == 0 {
		return nil
	}
	const show = 10
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d bad samples", d.Dir, len(d.Bad))
	for i, e := range d.Bad {
		if i == show {
			fmt.Fprintf(&b, "\n  ... and %d more", len(d.Bad)-show)
			break
		}
		fmt.Fprintf(&b, "\n  %v", e)
	}
	return errors.New(b.String())
}

// Texts returns the labels in sample order.
func (d *Dataset) Texts() []string {
	out := make([]string, len(d.Samples))
	for i, s := range d.Samples {
		out[i] = s.Text
	}
	return out
}

var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".bmp": true}

// LoadLabeled reads dir/labels.txt and validates every line and image up
// front. It returns an error only when the folder or the label file cannot
// be read (or ctx ends); rejected lines are in Dataset.Bad.
func LoadLabeled(ctx context.Context, dir string, opt LoadOptions) (*Dataset, error) {
	name := opt.LabelsFile
	if name == "" {
		name = LabelsFile
	}
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("load labels: %w", err)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM from Windows editors
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("load labels %s: %w", filepath.Join(dir, name), err)
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}

	format := opt.Format
	if format == "" || format == FormatAuto {
		format = FormatIndexed
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 {
				if imageExts[strings.ToLower(filepath.Ext(f[0]))] {
					format = FormatNamed
				}
				break
			}
		}
	}
	if format != FormatIndexed && format != FormatNamed {
		return nil, fmt.Errorf("load labels: unknown format %q", format)
	}

	d := &Dataset{Dir: dir, Format: format, Labeled: true}
	bad := func(line int, format string, args ...any) {
		d.Bad = append(d.Bad, &LineError{File: name, Line: line, Err: fmt.Errorf(format, args...)})
	}
	seen := map[string]int{}
	var cands []Sample
	for i, l := range lines {
		lineNo := i + 1
		f := strings.Fields(l)
		var s Sample
		s.Line = lineNo
		switch format {
		case FormatIndexed:
			s.Name = strconv.Itoa(i) + ".png"
			if len(f) == 0 {
				bad(lineNo, "empty line: %s has no label", s.Name)
				continue
			}
			if len(f) > 2 {
				bad(lineNo, "want \"label [value]\", got %d fields", len(f))
				continue
			}
			s.Text = f[0]
			if len(f) == 2 {
				s.Value = f[1]
			}
		case FormatNamed:
			if len(f) == 0 {
				continue // the name is on the line, so blank lines shift nothing
			}
			if len(f) < 2 || len(f) > 3 {
				bad(lineNo, "want \"filename label [value]\", got %d fields", len(f))
				continue
			}
			s.Name, s.Text = f[0], f[1]
			if len(f) == 3 {
				s.Value = f[2]
			}
			if filepath.IsAbs(s.Name) || !filepath.IsLocal(s.Name) {
				bad(lineNo, "image name %q must be a path inside %s", s.Name, dir)
				continue
			}
			if prev, dup := seen[s.Name]; dup {
				bad(lineNo, "image %s already labeled on line %d", s.Name, prev)
				continue
			}
			seen[s.Name] = lineNo
		}
		if err := checkText(s.Text, &opt); err != nil {
			bad(lineNo, "%v", err)
			continue
		}
		if s.Value != "" {
			norm, err := expr.Prelim.Normalize(s.Value)
			if err != nil {
				bad(lineNo, "%v", err)
				continue
			}
			s.Value = norm
			if opt.CheckValues {
				got, err := expr.Prelim.Eval(s.Text)
				if err != nil {
					bad(lineNo, "label %v", err)
					continue
				}
				if expr.Prelim.Format(got) != norm {
					bad(lineNo, "value %s does not match %s = %s", norm, s.Text, expr.Prelim.Format(got))
					continue
				}
			}
		}
		s.Path = filepath.Join(dir, s.Name)
		cands = append(cands, s)
	}

	good, imgBad, err := checkImages(ctx, cands, &opt)
	if err != nil {
		return nil, err
	}
	for _, e := range imgBad {
		e.File = name
	}
	d.Samples = good
	d.Bad = append(d.Bad, imgBad...)
	sort.SliceStable(d.Bad, func(i, j int) bool { return d.Bad[i].Line < d.Bad[j].Line })
	return d, nil
}

// LoadTestDir loads a folder to predict: with labels.txt as LoadLabeled,
// without it every file named N.png, in numeric order, unlabeled (other
// files are ignored).
func LoadTestDir(ctx context.Context, dir string, opt LoadOptions) (*Dataset, error) {
	name := opt.LabelsFile
	if name == "" {
		name = LabelsFile
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		return LoadLabeled(ctx, dir, opt)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load test dir: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load test dir: %w", err)
	}
	type numbered struct {
		n    uint64
		name string
	}
	var files []numbered
	for _, e := range ents {
		stem, ok := strings.CutSuffix(e.Name(), ".png")
		if !ok || e.IsDir() || stem == "" || strings.Trim(stem, "0123456789") != "" {
			continue
		}
		n, err := strconv.ParseUint(stem, 10, 64)
		if err != nil {
			continue
		}
		files = append(files, numbered{n, e.Name()})
	}
	sort.Slice(files, func(i, j int) bool {
		if files[i].n != files[j].n {
			return files[i].n < files[j].n
		}
		return files[i].name < files[j].name
	})
	cands := make([]Sample, len(files))
	for i, f := range files {
		cands[i] = Sample{Name: f.name, Path: filepath.Join(dir, f.name)}
	}
	good, bad, err := checkImages(ctx, cands, &opt)
	if err != nil {
		return nil, err
	}
	return &Dataset{Dir: dir, Samples: good, Bad: bad}, nil
}

func checkText(text string, opt *LoadOptions) error {
	if !utf8.ValidString(text) {
		return fmt.Errorf("label %q is not valid UTF-8", text)
	}
	if opt.MaxLen > 0 {
		if n := utf8.RuneCountInString(text); n > opt.MaxLen {
			return fmt.Errorf("label %q has %d characters, more than %d", text, n, opt.MaxLen)
		}
	}
	if opt.Charset != "" {
		var unknown []rune
		for _, r := range text {
			if !strings.ContainsRune(opt.Charset, r) && !strings.ContainsRune(string(unknown), r) {
				unknown = append(unknown, r)
			}
		}
		if len(unknown) > 0 {
			return fmt.Errorf("label %q: unknown characters %q (charset %q)", text, string(unknown), opt.Charset)
		}
	}
	return nil
}

// checkImages opens every candidate on all cores and splits them into good
// samples (order kept) and errors.
func checkImages(ctx context.Context, cands []Sample, opt *LoadOptions) ([]Sample, []*LineError, error) {
	errs := make([]error, len(cands))
	err := parallelFor(ctx, len(cands), func(i int) error {
		errs[i] = checkImage(cands[i].Path, opt)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("check images: %w", err)
	}
	var good []Sample
	var bad []*LineError
	for i, s := range cands {
		if errs[i] != nil {
			bad = append(bad, &LineError{File: s.Name, Line: s.Line, Err: fmt.Errorf("image %s: %w", s.Name, errs[i])})
			continue
		}
		good = append(good, s)
	}
	return good, bad, nil
}

func checkImage(path string, opt *LoadOptions) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("missing")
		}
		return err
	}
	defer f.Close()
	var w, h int
	if opt.HeaderOnly {
		cfg, _, err := image.DecodeConfig(bufio.NewReader(f))
		if err != nil {
			return fmt.Errorf("unreadable: %w", err)
		}
		if err := imagefile.CheckSize(cfg.Width, cfg.Height); err != nil {
			return err
		}
		w, h = cfg.Width, cfg.Height
	} else {
		img, _, err := imagefile.Decode(f)
		if errors.Is(err, imagefile.ErrTooLarge) {
			return err
		}
		if err != nil {
			return fmt.Errorf("unreadable: %w", err)
		}
		w, h = img.Bounds().Dx(), img.Bounds().Dy()
	}
	if (opt.Width > 0 && w != opt.Width) || (opt.Height > 0 && h != opt.Height) {
		dim := func(v int) string {
			if v <= 0 {
				return "any"
			}
			return strconv.Itoa(v)
		}
		return fmt.Errorf("is %dx%d, want %sx%s", w, h, dim(opt.Width), dim(opt.Height))
	}
	return nil
}

// LoadImage decodes a PNG, JPEG, GIF or BMP file (not over
// imagefile.MaxPixels).
func LoadImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := imagefile.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}
