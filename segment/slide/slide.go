// Package slide reads and writes whole-slide images through GDAL without ever
// holding a full slide in memory: region reads at pyramid levels, ground-truth
// masks, synthetic H&E-like slides, tissue detection and resumable tiling.
package slide

import (
	"errors"
	"fmt"
	"image"
	"sync"

	"github.com/airbusgeo/godal"
)

// ErrLevel is returned for a level outside [0, Levels()).
var ErrLevel = errors.New("level out of range")

// level describes one pyramid level. ovr is the GDAL overview index, or -1
// for full resolution and for virtual levels, which are decimated reads of
// full resolution for files without overviews.
type level struct {
	w, h int
	ovr  int
	// fx, fy: level-0 pixels per level pixel.
	fx, fy float64
}

// Slide is an open raster (TIFF, BigTIFF, pyramidal TIFF, SVS, PNG, JPEG, …).
// Its methods are safe for concurrent use, but reads are serialized because a
// GDAL dataset handle is single-threaded; open one Slide per goroutine to read
// in parallel.
type Slide struct {
	path   string
	mu     sync.Mutex
	ds     *godal.Dataset
	bands  int
	alpha  int // 0-based index of an alpha band, or -1
	pal    *godal.ColorTable
	levels []level
}

// minVirtualLevel is the size below which no further virtual levels are made
// for files without overviews.
const minVirtualLevel = 256

// slideDrivers are the GDAL drivers a slide is read with (TIFF covers
// BigTIFF, pyramidal TIFF and SVS): GDAL would otherwise try every format
// it knows on whatever file it is given.
var slideDrivers = []string{"GTiff", "PNG", "JPEG"}

// Open opens a slide read-only.
func Open(path string) (*Slide, error) {
	initGDAL()
	ds, err := godal.Open(path, godal.RasterOnly(), godal.Drivers(slideDrivers...), failuresOnly())
	if err != nil {
		return nil, fmt.Errorf("open slide %s: %w", path, oneLine(err))
	}
	s := &Slide{path: path, ds: ds, alpha: -1}
	if err := s.init(); err != nil {
		ds.Close()
		return nil, fmt.Errorf("open slide %s: %w", path, err)
	}
	return s, nil
}

func (s *Slide) init() error {
	bands := s.ds.Bands()
	if len(bands) == 0 {
		return errors.New("no raster bands")
	}
	s.bands = len(bands)
	st := s.ds.Structure()
	if st.SizeX <= 0 || st.SizeY <= 0 {
		return fmt.Errorf("empty raster %dx%d", st.SizeX, st.SizeY)
	}
	for i, b := range bands {
		if b.ColorInterp() == godal.CIAlpha {
			s.alpha = i
		}
	}
	if s.bands == 2 && s.alpha < 0 {
		s.alpha = 1
	}
	if s.bands == 1 && bands[0].ColorInterp() == godal.CIPalette {
		ct := bands[0].ColorTable()
		if len(ct.Entries) > 0 {
			s.pal = &ct
		}
	}
	w0, h0 := st.SizeX, st.SizeY
	s.levels = []level{{w: w0, h: h0, ovr: -1, fx: 1, fy: 1}}
	ovrs := bands[0].Overviews()
	for i, o := range ovrs {
		ost := o.Structure()
		last := s.levels[len(s.levels)-1]
		if ost.SizeX >= last.w || ost.SizeY >= last.h || ost.SizeX <= 0 || ost.SizeY <= 0 {
			continue // GDAL lists overviews largest first; skip anything odd
		}
		ok := true
		for _, b := range bands[1:] {
			bo := b.Overviews()
			if len(bo) != len(ovrs) || bo[i].Structure().SizeX != ost.SizeX {
				ok = false
			}
		}
		if !ok {
			continue
		}
		s.levels = append(s.levels, level{w: ost.SizeX, h: ost.SizeY, ovr: i,
			fx: float64(w0) / float64(ost.SizeX), fy: float64(h0) / float64(ost.SizeY)})
	}
	if len(s.levels) == 1 {
		for f := 2; max(w0, h0)/(f/2) > minVirtualLevel; f *= 2 {
			s.levels = append(s.levels, level{w: ceilDiv(w0, f), h: ceilDiv(h0, f), ovr: -1,
				fx: float64(f), fy: float64(f)})
		}
	}
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// Path is the file the slide was opened from.
func (s *Slide) Path() string { return s.path }

// Levels is the number of pyramid levels; level 0 is full resolution. Files
// without overviews get virtual levels at powers of two, read by decimation.
func (s *Slide) Levels() int { return len(s.levels) }

// HasOverviews reports whether levels > 0 come from overviews in the file
// (cheap) rather than decimated full-resolution reads.
func (s *Slide) HasOverviews() bool { return len(s.levels) > 1 && s.levels[1].ovr >= 0 }

// Size is the width and height of a level in pixels; 0,0 for a bad level.
func (s *Slide) Size(lvl int) image.Point {
	if lvl < 0 || lvl >= len(s.levels) {
		return image.Point{}
	}
	return image.Pt(s.levels[lvl].w, s.levels[lvl].h)
}

// Bounds is the rectangle of a level in its own pixel coordinates.
func (s *Slide) Bounds(lvl int) image.Rectangle {
	return image.Rectangle{Max: s.Size(lvl)}
}

// Downsample is the number of level-0 pixels per level pixel along x and y.
func (s *Slide) Downsample(lvl int) (fx, fy float64) {
	if lvl < 0 || lvl >= len(s.levels) {
		return 0, 0
	}
	return s.levels[lvl].fx, s.levels[lvl].fy
}

// BestLevel is the lowest-resolution level whose larger side is still at
// least minSide pixels (level 0 when none is).
func (s *Slide) BestLevel(minSide int) int {
	best := 0
	for i, l := range s.levels {
		if max(l.w, l.h) >= minSide {
			best = i
		}
	}
	return best
}

// Close releases the GDAL dataset.
func (s *Slide) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ds == nil {
		return nil
	}
	err := s.ds.Close(failuresOnly())
	s.ds = nil
	if err != nil {
		return fmt.Errorf("close slide %s: %w", s.path, err)
	}
	return nil
}

// ReadRegion reads rectangle r, in pixel coordinates of level lvl. Pixels of
// r outside the level are opaque white, the colour of empty glass.
func (s *Slide) ReadRegion(lvl int, r image.Rectangle) (*image.NRGBA, error) {
	dst := image.NewNRGBA(r)
	if err := s.ReadRegionInto(lvl, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// ReadRegionInto reads dst.Rect at level lvl into dst, reusing its memory.
func (s *Slide) ReadRegionInto(lvl int, dst *image.NRGBA) error {
	if lvl < 0 || lvl >= len(s.levels) {
		return fmt.Errorf("read %s level %d of %d: %w", s.path, lvl, len(s.levels), ErrLevel)
	}
	r := dst.Rect
	l := s.levels[lvl]
	in := r.Intersect(image.Rect(0, 0, l.w, l.h))
	if in != r {
		fillWhite(dst)
	}
	if in.Empty() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ds == nil {
		return fmt.Errorf("read %s: slide is closed", s.path)
	}
	if err := s.read(l, in, dst); err != nil {
		return fmt.Errorf("read %s level %d %v: %w", s.path, lvl, in, oneLine(err))
	}
	return nil
}

func fillWhite(m *image.NRGBA) {
	for y := 0; y < m.Rect.Dy(); y++ {
		row := m.Pix[y*m.Stride : y*m.Stride+4*m.Rect.Dx()]
		for i := range row {
			row[i] = 255
		}
	}
}

// read fills the part `in` of dst (in level coordinates) from the file.
func (s *Slide) read(l level, in image.Rectangle, dst *image.NRGBA) error {
	off := dst.PixOffset(in.Min.X, in.Min.Y)
	buf := dst.Pix[off:]
	bw, bh := in.Dx(), in.Dy()
	// The requested bands go to byte offsets within each 4-byte pixel.
	var bandIdx, chans []int
	switch {
	case s.bands >= 3:
		bandIdx, chans = []int{0, 1, 2}, []int{0, 1, 2}
	default:
		bandIdx, chans = []int{0}, []int{0}
	}
	if s.alpha >= 0 {
		bandIdx, chans = append(bandIdx, s.alpha), append(chans, 3)
	}
	if l.ovr >= 0 {
		bands := s.ds.Bands()
		for i, b := range bandIdx {
			ob := bands[b].Overviews()[l.ovr]
			if err := ob.Read(in.Min.X, in.Min.Y, buf[chans[i]:], bw, bh,
				godal.PixelSpacing(4), godal.LineSpacing(dst.Stride), failuresOnly()); err != nil {
				return err
			}
		}
	} else {
		// Level-0 window covered by `in`; for virtual levels GDAL decimates.
		x0, y0 := int(float64(in.Min.X)*l.fx), int(float64(in.Min.Y)*l.fy)
		x1, y1 := int(float64(in.Max.X)*l.fx), int(float64(in.Max.Y)*l.fy)
		w0, h0 := s.levels[0].w, s.levels[0].h
		x1, y1 = min(x1, w0), min(y1, h0)
		// Contiguous band runs (RGB, RGBA) are one dataset read so GDAL
		// decodes each interleaved block once.
		n := len(bandIdx)
		if n == 4 && bandIdx[3] != 3 {
			n = 3
		}
		opts := []godal.DatasetIOOption{godal.Bands(bandIdx[:n]...), godal.PixelSpacing(4),
			godal.LineSpacing(dst.Stride), godal.BandSpacing(1), godal.Window(x1-x0, y1-y0), failuresOnly()}
		if err := s.ds.Read(x0, y0, buf, bw, bh, opts...); err != nil {
			return err
		}
		if n < len(bandIdx) {
			opts[0] = godal.Bands(bandIdx[n:]...)
			if err := s.ds.Read(x0, y0, buf[3:], bw, bh, opts...); err != nil {
				return err
			}
		}
	}
	// Expand grey/palette and set opacity; separate loops keep the common
	// RGB case a tight store of every fourth byte.
	for y := 0; y < bh; y++ {
		row := buf[y*dst.Stride : y*dst.Stride+4*bw]
		switch {
		case s.pal != nil:
			for i := 0; i < len(row); i += 4 {
				if idx := int(row[i]); idx < len(s.pal.Entries) {
					e := s.pal.Entries[idx]
					row[i], row[i+1], row[i+2] = clamp8(e[0]), clamp8(e[1]), clamp8(e[2])
					if s.alpha < 0 {
						row[i+3] = clamp8(e[3])
					}
				}
			}
		case s.bands < 3:
			for i := 0; i < len(row); i += 4 {
				row[i+1], row[i+2] = row[i], row[i]
				if s.alpha < 0 {
					row[i+3] = 255
				}
			}
		case s.alpha < 0:
			for i := 3; i < len(row); i += 4 {
				row[i] = 255
			}
		}
	}
	return nil
}

// Opaque reports whether every pixel the slide returns has alpha 255.
func (s *Slide) Opaque() bool { return s.alpha < 0 && s.pal == nil }

func clamp8(v int16) uint8 {
	return uint8(min(max(v, 0), 255))
}
