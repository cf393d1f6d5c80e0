package slide

import (
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/airbusgeo/godal"
)

// Blend chooses how overlapping prediction windows are combined.
type Blend int

const (
	// BlendConstant averages all windows covering a pixel.
	BlendConstant Blend = iota
	// BlendGaussian weights each window by a Gaussian centred on it
	// (σ = window/8, floored at 1e-3, as MONAI's sliding-window inference),
	// damping the less reliable window borders.
	BlendGaussian
	// BlendCenter keeps, for each pixel, the window whose central
	// (window−overlap)² crop contains it; borders of windows count only
	// where no centre covers the pixel (image edges, skipped windows).
	BlendCenter
)

// ParseBlend maps "constant", "gaussian", "center" to a Blend.
func ParseBlend(s string) (Blend, error) {
	switch s {
	case "constant", "":
		return BlendConstant, nil
	case "gaussian":
		return BlendGaussian, nil
	case "center", "centre":
		return BlendCenter, nil
	}
	return 0, fmt.Errorf("blend %q: want constant, gaussian or center", s)
}

// StitchOptions describes a stitched prediction raster.
type StitchOptions struct {
	Width, Height int // output size (pixels of the predicted level)
	Window        int // prediction window side
	Overlap       int // window overlap; stride = Window − Overlap
	Blend         Blend
	// Float writes float32 probabilities; otherwise uint8 (round(p·255)).
	Float       bool
	BlockSize   int  // GeoTIFF block side, default 256
	NoOverviews bool // skip the pyramid
}

// Stitcher blends overlapping window predictions into a tiled, deflate
// BigTIFF with overviews, streaming: windows arrive in row order and only
// about Window+BlockSize rows of accumulators are held.
type Stitcher struct {
	path, tmp string
	o         StitchOptions
	stride    int
	nx, ny    int
	weight    []float32 // per-window weights, Window²
	ds        *godal.Dataset
	base      int         // first output row held in rows
	rows      [][]float32 // per held row: sum[0:W] then weight[W:2W]
	pool      [][]float32
	lastRow   int
	out8      []uint8
	out32     []float32
	closed    bool
}

// NewStitcher creates the output (under a temporary name until Close).
func NewStitcher(path string, o StitchOptions) (*Stitcher, error) {
	if o.BlockSize == 0 {
		o.BlockSize = 256
	}
	if o.Width <= 0 || o.Height <= 0 || o.Window <= 0 || o.Overlap < 0 || o.Overlap >= o.Window ||
		o.BlockSize%16 != 0 {
		return nil, fmt.Errorf("stitch %s: bad options %+v", path, o)
	}
	initGDAL()
	st := &Stitcher{path: path, tmp: tempName(path), o: o, stride: o.Window - o.Overlap}
	st.nx = gridCount(o.Width, o.Window, st.stride)
	st.ny = gridCount(o.Height, o.Window, st.stride)
	st.weight = windowWeights(o.Window, o.Overlap, o.Blend)
	bs := strconv.Itoa(o.BlockSize)
	co := []string{"TILED=YES", "BIGTIFF=YES", "COMPRESS=DEFLATE", "BLOCKXSIZE=" + bs, "BLOCKYSIZE=" + bs}
	dt := godal.Byte
	if o.Float {
		dt = godal.Float32
		co = append(co, "PREDICTOR=3")
		st.out32 = make([]float32, o.Width*o.BlockSize)
	} else {
		co = append(co, "PREDICTOR=2")
		st.out8 = make([]uint8, o.Width*o.BlockSize)
	}
	ds, err := godal.Create(godal.GTiff, st.tmp, 1, dt, o.Width, o.Height, godal.CreationOption(co...), failuresOnly())
	if err != nil {
		return nil, fmt.Errorf("stitch %s: %w", path, err)
	}
	st.ds = ds
	return st, nil
}

// windowWeights is the separable per-pixel weight of one window.
func windowWeights(n, overlap int, b Blend) []float32 {
	w1 := make([]float64, n)
	for i := range w1 {
		switch b {
		case BlendGaussian:
			sigma := 0.125 * float64(n)
			d := float64(i) + 0.5 - float64(n)/2
			w1[i] = math.Max(math.Exp(-d*d/(2*sigma*sigma)), 1e-3)
		case BlendCenter:
			lo := overlap / 2
			hi := n - (overlap - lo)
			w1[i] = 1e-6 // two borders give 1e-12, still > 0 in float32
			if i >= lo && i < hi {
				w1[i] = 1
			}
		default:
			w1[i] = 1
		}
	}
	w := make([]float32, n*n)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			w[y*n+x] = float32(w1[y] * w1[x])
		}
	}
	return w
}

// Grid is the number of window columns and rows; window (c, r) covers
// [c·stride, c·stride+Window) × [r·stride, r·stride+Window), the same grid as
// TileRecord.Col/Row for a tiling with the same size and overlap.
func (st *Stitcher) Grid() (cols, rows int) { return st.nx, st.ny }

// Add blends one window's probabilities (Window² values, row-major, in [0,1]).
// Windows may be skipped (their pixels stay 0 unless another window covers
// them) but must come in non-decreasing row order.
func (st *Stitcher) Add(col, row int, prob []float32) error {
	n := st.o.Window
	switch {
	case st.closed:
		return fmt.Errorf("stitch %s: add after close", st.path)
	case col < 0 || col >= st.nx || row < 0 || row >= st.ny:
		return fmt.Errorf("stitch %s: window %d,%d outside %dx%d grid", st.path, col, row, st.nx, st.ny)
	case len(prob) != n*n:
		return fmt.Errorf("stitch %s: window %d,%d has %d values, want %d", st.path, col, row, len(prob), n*n)
	case row < st.lastRow:
		return fmt.Errorf("stitch %s: window row %d after row %d: rows must not go back", st.path, row, st.lastRow)
	}
	st.lastRow = row
	x0, y0 := col*st.stride, row*st.stride
	// Rows above y0 are final; write whole block rows of them.
	if err := st.flush((y0 / st.o.BlockSize) * st.o.BlockSize); err != nil {
		return err
	}
	W := st.o.Width
	for j := 0; j < n; j++ {
		y := y0 + j
		if y >= st.o.Height {
			break
		}
		acc := st.row(y)
		pw := prob[j*n : j*n+n]
		ww := st.weight[j*n : j*n+n]
		for i := 0; i < n && x0+i < W; i++ {
			acc[x0+i] += ww[i] * pw[i]
			acc[W+x0+i] += ww[i]
		}
	}
	return nil
}

func (st *Stitcher) row(y int) []float32 {
	for st.base+len(st.rows) <= y {
		var r []float32
		if k := len(st.pool); k > 0 {
			r, st.pool = st.pool[k-1], st.pool[:k-1]
			clear(r)
		} else {
			r = make([]float32, 2*st.o.Width)
		}
		st.rows = append(st.rows, r)
	}
	return st.rows[y-st.base]
}

// flush writes rows [base, upTo) block row by block row.
func (st *Stitcher) flush(upTo int) error {
	upTo = min(upTo, st.o.Height)
	W, B := st.o.Width, st.o.BlockSize
	for st.base < upTo {
		n := min(B, upTo-st.base)
		for j := 0; j < n; j++ {
			var acc []float32
			if j < len(st.rows) {
				acc = st.rows[j]
			}
			for x := 0; x < W; x++ {
				var p float32
				if acc != nil && acc[W+x] > 0 {
					p = acc[x] / acc[W+x]
				}
				if st.out32 != nil {
					st.out32[j*W+x] = p
				} else {
					st.out8[j*W+x] = uint8(min(max(p, 0), 1)*255 + 0.5)
				}
			}
		}
		// One call per block column so every write fills whole blocks and
		// GDAL never evicts (and recompresses) a half-written block.
		for bx := 0; bx < W; bx += B {
			bw := min(B, W-bx)
			var err error
			if st.out32 != nil {
				err = st.ds.Write(bx, st.base, st.out32[bx:], bw, n, godal.LineSpacing(4*W), failuresOnly())
			} else {
				err = st.ds.Write(bx, st.base, st.out8[bx:], bw, n, godal.LineSpacing(W), failuresOnly())
			}
			if err != nil {
				return fmt.Errorf("stitch %s: write rows %d+%d: %w", st.path, st.base, n, err)
			}
		}
		k := min(n, len(st.rows))
		st.pool = append(st.pool, st.rows[:k]...)
		st.rows = append(st.rows[:0], st.rows[k:]...)
		st.base += n
	}
	return nil
}

// Close writes the remaining rows, builds overviews and renames the file
// into place.
func (st *Stitcher) Close() error {
	if st.closed {
		return nil
	}
	st.closed = true
	err := st.flush(st.o.Height)
	if err == nil && !st.o.NoOverviews {
		err = st.ds.BuildOverviews(godal.Resampling(godal.Average), godal.MinSize(st.o.BlockSize),
			godal.ConfigOption("COMPRESS_OVERVIEW=DEFLATE", "GDAL_TIFF_OVR_BLOCKSIZE="+strconv.Itoa(st.o.BlockSize)),
			failuresOnly())
	}
	if cerr := st.ds.Close(failuresOnly()); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(st.tmp, st.path)
	}
	if err != nil {
		os.Remove(st.tmp)
		return fmt.Errorf("stitch %s: %w", st.path, err)
	}
	return nil
}

// Abort discards the output.
func (st *Stitcher) Abort() {
	if !st.closed {
		st.closed = true
		st.ds.Close()
		os.Remove(st.tmp)
	}
}
