package synth

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gomedium"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"
)

// DefaultCJKFont is where Debian's fonts-wqy-zenhei installs its collection.
const DefaultCJKFont = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"

// DefaultDigitFontDir is where Debian's fonts-dejavu-core installs DejaVu.
const DefaultDigitFontDir = "/usr/share/fonts/truetype/dejavu"

// dejavuNames are the DejaVu faces used for digits and operators; the
// oblique, extra-light and math faces are left out because the competition's
// digits are upright and solid.
var dejavuNames = []string{
	"DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansCondensed.ttf",
	"DejaVuSansCondensed-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
	"DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
}

// fontSet holds parsed fonts. sfnt.Font is safe for concurrent use; faces
// built from it are not, so each sample builds its own.
type fontSet struct {
	cjk    []*sfnt.Font
	digits []*sfnt.Font
}

func loadFonts(cjkPath, digitDir string) (*fontSet, error) {
	fs := &fontSet{}
	data, err := os.ReadFile(cjkPath)
	if err != nil {
		return nil, fmt.Errorf("CJK font (install fonts-wqy-zenhei): %w", err)
	}
	fs.cjk, err = parseFonts(data)
	if err != nil {
		return nil, fmt.Errorf("parse CJK font %s: %w", cjkPath, err)
	}
	for _, ttf := range [][]byte{goregular.TTF, gobold.TTF, gomedium.TTF, gomono.TTF} {
		f, err := sfnt.Parse(ttf)
		if err != nil {
			return nil, fmt.Errorf("parse Go font: %w", err)
		}
		fs.digits = append(fs.digits, f)
	}
	// The CJK collection's own Latin digits are a style of their own.
	fs.digits = append(fs.digits, fs.cjk[0])
	if digitDir != "" {
		names := append([]string(nil), dejavuNames...)
		sort.Strings(names)
		for _, name := range names {
			data, err := os.ReadFile(filepath.Join(digitDir, name))
			if os.IsNotExist(err) {
				continue // DejaVu is optional; the Go fonts suffice.
			}
			if err != nil {
				return nil, fmt.Errorf("digit font: %w", err)
			}
			f, err := sfnt.Parse(data)
			if err != nil {
				return nil, fmt.Errorf("parse digit font %s: %w", name, err)
			}
			fs.digits = append(fs.digits, f)
		}
	}
	return fs, nil
}

// parseFonts parses a TrueType font or collection. wqy-zenhei.ttc stores
// tables at offsets that are not multiples of 4, which the spec requires and
// x/image/sfnt enforces ("invalid table offset"), so each font is first
// copied into a standalone font with aligned tables. Tables reference each
// other only by tag, never by file offset, so moving them is safe.
func parseFonts(data []byte) ([]*sfnt.Font, error) {
	var offsets []int
	if len(data) >= 12 && string(data[:4]) == "ttcf" {
		n := int(binary.BigEndian.Uint32(data[8:12]))
		if n <= 0 || n > 64 || len(data) < 12+4*n {
			return nil, fmt.Errorf("bad collection header (%d fonts)", n)
		}
		for i := range n {
			offsets = append(offsets, int(binary.BigEndian.Uint32(data[12+4*i:])))
		}
	} else {
		offsets = []int{0}
	}
	var fonts []*sfnt.Font
	for i, off := range offsets {
		single, err := realignFont(data, off)
		if err != nil {
			return nil, fmt.Errorf("font #%d: %w", i, err)
		}
		f, err := sfnt.Parse(single)
		if err != nil {
			return nil, fmt.Errorf("font #%d: %w", i, err)
		}
		fonts = append(fonts, f)
	}
	return fonts, nil
}

// realignFont copies the font whose offset table starts at off into a new
// buffer with every table at a 4-byte aligned offset.
func realignFont(data []byte, off int) ([]byte, error) {
	if off < 0 || off+12 > len(data) {
		return nil, fmt.Errorf("offset table at %d out of range", off)
	}
	numTables := int(binary.BigEndian.Uint16(data[off+4:]))
	recs := off + 12
	if recs+16*numTables > len(data) {
		return nil, fmt.Errorf("%d table records out of range", numTables)
	}
	headerLen := 12 + 16*numTables
	size := headerLen
	for i := range numTables {
		r := data[recs+16*i:]
		o, n := int(binary.BigEndian.Uint32(r[8:])), int(binary.BigEndian.Uint32(r[12:]))
		if o < 0 || n < 0 || o+n > len(data) {
			return nil, fmt.Errorf("table %q out of range", r[:4])
		}
		size += (n + 3) &^ 3
	}
	out := make([]byte, size)
	copy(out, data[off:off+headerLen])
	pos := headerLen
	for i := range numTables {
		r := data[recs+16*i:]
		o, n := int(binary.BigEndian.Uint32(r[8:])), int(binary.BigEndian.Uint32(r[12:]))
		copy(out[pos:], data[o:o+n])
		binary.BigEndian.PutUint32(out[12+16*i+8:], uint32(pos))
		pos += (n + 3) &^ 3
	}
	return out, nil
}
