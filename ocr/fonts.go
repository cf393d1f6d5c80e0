package ocr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gobolditalic"
	"golang.org/x/image/font/gofont/goitalic"
	"golang.org/x/image/font/gofont/gomedium"
	"golang.org/x/image/font/gofont/gomediumitalic"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/gofont/gomonobolditalic"
	"golang.org/x/image/font/gofont/gomonoitalic"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/gofont/gosmallcaps"
	"golang.org/x/image/font/gofont/gosmallcapsitalic"
	"golang.org/x/image/font/sfnt"
)

// goFonts are the fonts embedded in golang.org/x/image, addressable in a
// font list as "go:NAME" so a configuration never depends on installed files.
var goFonts = map[string][]byte{
	"regular":         goregular.TTF,
	"bold":            gobold.TTF,
	"italic":          goitalic.TTF,
	"bolditalic":      gobolditalic.TTF,
	"medium":          gomedium.TTF,
	"mediumitalic":    gomediumitalic.TTF,
	"mono":            gomono.TTF,
	"monobold":        gomonobold.TTF,
	"monoitalic":      gomonoitalic.TTF,
	"monobolditalic":  gomonobolditalic.TTF,
	"smallcaps":       gosmallcaps.TTF,
	"smallcapsitalic": gosmallcapsitalic.TTF,
}

// Debian package locations of the system fonts the defaults use.
const (
	DejaVuDir = "/usr/share/fonts/truetype/dejavu"
	WQYZenHei = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
)

// DefaultFonts is the font list used when a CaptchaConfig names none: three
// Go fonts (always available) plus the upright DejaVu Sans, Sans Mono and
// Serif faces when fonts-dejavu-core is installed. The Python library's own
// default is a single sans mono face (DroidSansMono); a few more shapes make
// a model less dependent on one typeface.
func DefaultFonts() []string {
	fonts := []string{"go:regular", "go:bold", "go:mono"}
	for _, name := range []string{"DejaVuSans.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf"} {
		p := filepath.Join(DejaVuDir, name)
		if _, err := os.Stat(p); err == nil {
			fonts = append(fonts, p)
		}
	}
	return fonts
}

// Font is one parsed face with the name it was loaded under (file path,
// "path#i" for a face inside a collection, or "go:NAME").
type Font struct {
	Name string
	Font *sfnt.Font
}

// LoadFonts resolves a font list. Each entry is one of:
//   - "go:NAME" for an embedded Go font (regular, bold, italic, mono, ...), or "go:all";
//   - a .ttf/.otf file;
//   - a .ttc/.otc collection: every face in it, or only face i with "file.ttc#i";
//   - a directory: every .ttf/.otf/.ttc/.otc directly inside it, sorted by name.
//
// The order of the result is deterministic, which keeps generated images
// reproducible for a given list.
func LoadFonts(entries []string) ([]Font, error) {
	var out []Font
	for _, e := range entries {
		fs, err := loadFontEntry(e)
		if err != nil {
			return nil, fmt.Errorf("font %q: %w", e, err)
		}
		out = append(out, fs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no fonts loaded from %v", entries)
	}
	return out, nil
}

func loadFontEntry(e string) ([]Font, error) {
	if name, ok := strings.CutPrefix(e, "go:"); ok {
		if name == "all" {
			names := make([]string, 0, len(goFonts))
			for n := range goFonts {
				names = append(names, n)
			}
			sort.Strings(names)
			var out []Font
			for _, n := range names {
				f, err := sfnt.Parse(goFonts[n])
				if err != nil {
					return nil, err
				}
				out = append(out, Font{Name: "go:" + n, Font: f})
			}
			return out, nil
		}
		data, ok := goFonts[name]
		if !ok {
			return nil, fmt.Errorf("unknown Go font %q", name)
		}
		f, err := sfnt.Parse(data)
		if err != nil {
			return nil, err
		}
		return []Font{{Name: e, Font: f}}, nil
	}
	path, index := e, -1
	if i := strings.LastIndexByte(e, '#'); i >= 0 {
		var n int
		if _, err := fmt.Sscanf(e[i+1:], "%d", &n); err == nil && n >= 0 {
			path, index = e[:i], n
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		var out []Font
		for _, de := range ents { // ReadDir sorts by name
			if de.IsDir() || !isFontFile(de.Name()) {
				continue
			}
			fs, err := loadFontFile(filepath.Join(path, de.Name()), -1)
			if err != nil {
				return nil, err
			}
			out = append(out, fs...)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no font files in directory")
		}
		return out, nil
	}
	return loadFontFile(path, index)
}

func isFontFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".ttf", ".otf", ".ttc", ".otc":
		return true
	}
	return false
}

func loadFontFile(path string, index int) ([]Font, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".ttc" && ext != ".otc" {
		if index > 0 {
			return nil, fmt.Errorf("%s: face index %d in a single-font file", path, index)
		}
		f, err := sfnt.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return []Font{{Name: path, Font: f}}, nil
	}
	c, err := sfnt.ParseCollection(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	lo, hi := 0, c.NumFonts()
	if index >= 0 {
		if index >= hi {
			return nil, fmt.Errorf("%s: face %d of %d", path, index, hi)
		}
		lo, hi = index, index+1
	}
	var out []Font
	for i := lo; i < hi; i++ {
		f, err := c.Font(i)
		if err != nil {
			// WenQuanYi Zen Hei's collection has tables at unaligned
			// offsets, which sfnt rejects; copying the face into a
			// standalone, aligned font works around it.
			if data1, rerr := extractFace(data, i); rerr == nil {
				f, err = sfnt.Parse(data1)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s#%d: %w", path, i, err)
		}
		out = append(out, Font{Name: fmt.Sprintf("%s#%d", path, i), Font: f})
	}
	return out, nil
}

// hasGlyph reports whether f maps r to a real glyph (not .notdef).
func hasGlyph(f *sfnt.Font, r rune) bool {
	var buf sfnt.Buffer
	x, err := f.GlyphIndex(&buf, r)
	return err == nil && x != 0
}

// extractFace copies face i of a TrueType collection into a standalone font
// with every table at a 4-byte aligned offset, as the OpenType spec requires
// and sfnt checks. Table contents are copied unchanged; checksums are not
// recomputed (sfnt ignores them).
func extractFace(ttc []byte, i int) ([]byte, error) {
	u16 := func(b []byte) int { return int(binary.BigEndian.Uint16(b)) }
	u32 := func(b []byte) int { return int(binary.BigEndian.Uint32(b)) }
	if len(ttc) < 12 || string(ttc[:4]) != "ttcf" {
		return nil, errors.New("not a TrueType collection")
	}
	if n := u32(ttc[8:]); i >= n || 12+4*n > len(ttc) {
		return nil, fmt.Errorf("face %d out of range", i)
	}
	off := u32(ttc[12+4*i:])
	if off+12 > len(ttc) {
		return nil, errors.New("face offset out of range")
	}
	numTables := u16(ttc[off+4:])
	dirEnd := off + 12 + 16*numTables
	if dirEnd > len(ttc) {
		return nil, errors.New("table directory out of range")
	}
	size := 12 + 16*numTables
	for t := range numTables {
		rec := ttc[off+12+16*t:]
		o, n := u32(rec[8:]), u32(rec[12:])
		if o+n > len(ttc) || o+n < o {
			return nil, fmt.Errorf("table %q out of range", rec[:4])
		}
		size += (n + 3) &^ 3
	}
	out := make([]byte, 12+16*numTables, size)
	copy(out, ttc[off:dirEnd])
	for t := range numTables {
		rec := out[12+16*t:]
		o, n := u32(rec[8:]), u32(rec[12:])
		binary.BigEndian.PutUint32(rec[8:], uint32(len(out)))
		out = append(out, ttc[o:o+n]...)
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
	}
	return out, nil
}
