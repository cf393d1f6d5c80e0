package slide

import (
	"fmt"
	"image"
	"strings"
	"sync"

	"github.com/airbusgeo/godal"
)

// Mask is a ground-truth tumour mask: a raster the size of the slide (0 =
// background, >0 = tumour; PNG, TIFF, anything GDAL reads) or polygons in a
// GeoJSON file in level-0 pixel coordinates (x right, y down), rasterized by
// GDAL region by region so no full-size raster is ever made.
type Mask struct {
	path   string
	size   image.Point
	mu     sync.Mutex
	ds     *godal.Dataset // raster mask
	vec    *godal.Dataset // polygon mask
	layers []string
}

// OpenMask opens a raster or GeoJSON mask for a slide whose level-0 size is
// size. A raster mask must have exactly that size; size may be zero for a
// raster mask, which then takes its own size.
func OpenMask(path string, size image.Point) (*Mask, error) {
	initGDAL()
	m := &Mask{path: path, size: size}
	lower := strings.ToLower(path)
	if strings.HasSuffix(lower, ".geojson") || strings.HasSuffix(lower, ".json") {
		if size.X <= 0 || size.Y <= 0 {
			return nil, fmt.Errorf("open mask %s: polygon masks need the slide size", path)
		}
		vec, err := godal.Open(path, godal.VectorOnly(), failuresOnly())
		if err != nil {
			return nil, fmt.Errorf("open mask %s: %w", path, oneLine(err))
		}
		for _, l := range vec.Layers() {
			m.layers = append(m.layers, l.Name())
		}
		if len(m.layers) == 0 {
			vec.Close()
			return nil, fmt.Errorf("open mask %s: no vector layers", path)
		}
		m.vec = vec
		return m, nil
	}
	ds, err := godal.Open(path, godal.RasterOnly(), failuresOnly())
	if err != nil {
		return nil, fmt.Errorf("open mask %s: %w", path, oneLine(err))
	}
	st := ds.Structure()
	if len(ds.Bands()) == 0 {
		ds.Close()
		return nil, fmt.Errorf("open mask %s: no raster bands", path)
	}
	got := image.Pt(st.SizeX, st.SizeY)
	if size == (image.Point{}) {
		m.size = got
	} else if got != size {
		ds.Close()
		return nil, fmt.Errorf("open mask %s: size %v does not match slide size %v", path, got, size)
	}
	m.ds = ds
	return m, nil
}

// Path is the mask's file.
func (m *Mask) Path() string { return m.path }

// Size is the level-0 size of the mask.
func (m *Mask) Size() image.Point { return m.size }

// Close releases the GDAL datasets.
func (m *Mask) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var err error
	if m.ds != nil {
		err = m.ds.Close(failuresOnly())
		m.ds = nil
	}
	if m.vec != nil {
		err = m.vec.Close()
		m.vec = nil
	}
	if err != nil {
		return fmt.Errorf("close mask %s: %w", m.path, err)
	}
	return nil
}

// ReadRegion reads the level-0 rectangle r0 resampled (nearest neighbour) to
// out pixels, as 0 (background) or 255 (tumour). Outside the mask is 0.
func (m *Mask) ReadRegion(r0 image.Rectangle, out image.Point) (*image.Gray, error) {
	if out.X <= 0 || out.Y <= 0 || r0.Empty() {
		return nil, fmt.Errorf("read mask %s: empty region %v -> %v", m.path, r0, out)
	}
	dst := image.NewGray(image.Rectangle{Max: out})
	m.mu.Lock()
	defer m.mu.Unlock()
	var err error
	switch {
	case m.ds != nil:
		err = m.readRaster(r0, dst)
	case m.vec != nil:
		err = m.rasterize(r0, dst)
	default:
		err = fmt.Errorf("mask is closed")
	}
	if err != nil {
		return nil, fmt.Errorf("read mask %s %v: %w", m.path, r0, oneLine(err))
	}
	for i, v := range dst.Pix {
		if v != 0 {
			dst.Pix[i] = 255
		}
	}
	return dst, nil
}

func (m *Mask) readRaster(r0 image.Rectangle, dst *image.Gray) error {
	in := r0.Intersect(image.Rectangle{Max: m.size})
	if in.Empty() {
		return nil
	}
	// Output pixels covered by the in-bounds part of r0.
	sx := float64(dst.Rect.Dx()) / float64(r0.Dx())
	sy := float64(dst.Rect.Dy()) / float64(r0.Dy())
	ox0, oy0 := int(float64(in.Min.X-r0.Min.X)*sx), int(float64(in.Min.Y-r0.Min.Y)*sy)
	ox1, oy1 := ceilF(float64(in.Max.X-r0.Min.X)*sx), ceilF(float64(in.Max.Y-r0.Min.Y)*sy)
	ox1, oy1 = min(max(ox1, ox0+1), dst.Rect.Dx()), min(max(oy1, oy0+1), dst.Rect.Dy())
	return m.ds.Bands()[0].Read(in.Min.X, in.Min.Y, dst.Pix[oy0*dst.Stride+ox0:], ox1-ox0, oy1-oy0,
		godal.Window(in.Dx(), in.Dy()), godal.LineSpacing(dst.Stride), failuresOnly())
}

func ceilF(v float64) int {
	i := int(v)
	if float64(i) < v {
		i++
	}
	return i
}

func (m *Mask) rasterize(r0 image.Rectangle, dst *image.Gray) error {
	w, h := dst.Rect.Dx(), dst.Rect.Dy()
	mem, err := godal.Create(godal.Memory, "", 1, godal.Byte, w, h, failuresOnly())
	if err != nil {
		return err
	}
	defer mem.Close()
	// Pixel coordinates with y down: a geotransform with positive y step.
	gt := [6]float64{float64(r0.Min.X), float64(r0.Dx()) / float64(w), 0,
		float64(r0.Min.Y), 0, float64(r0.Dy()) / float64(h)}
	if err := mem.SetGeoTransform(gt); err != nil {
		return err
	}
	args := []string{"-burn", "255"}
	for _, l := range m.layers {
		args = append(args, "-l", l)
	}
	if err := mem.RasterizeInto(m.vec, args, failuresOnly()); err != nil {
		return err
	}
	return mem.Read(0, 0, dst.Pix, w, h, failuresOnly())
}

// Fraction is the share of tumour pixels in the level-0 rectangle r0 (outside
// the mask counts as background). Large rectangles are sampled at most
// maxSide×maxSide points.
func (m *Mask) Fraction(r0 image.Rectangle) (float64, error) {
	const maxSide = 256
	out := image.Pt(min(r0.Dx(), maxSide), min(r0.Dy(), maxSide))
	g, err := m.ReadRegion(r0, out)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, v := range g.Pix {
		if v != 0 {
			n++
		}
	}
	return float64(n) / float64(len(g.Pix)), nil
}
