package slide

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// TileRecord is one tile of a slide's tiling. X, Y, Size are in pixels of
// Level; Col, Row index the tile grid (stride = Size − Overlap).
type TileRecord struct {
	Col        int     `json:"col"`
	Row        int     `json:"row"`
	X          int     `json:"x"`
	Y          int     `json:"y"`
	Level      int     `json:"level"`
	Size       int     `json:"size"`
	TissueFrac float64 `json:"tissue_fraction"` // share of tissue per the low-resolution tissue map
	TumourFrac float64 `json:"tumour_fraction"` // share of ground-truth tumour; 0 without a mask
}

// Rect is the tile's rectangle in pixels of its level.
func (r TileRecord) Rect() image.Rectangle {
	return image.Rect(r.X, r.Y, r.X+r.Size, r.Y+r.Size)
}

// Name is the tile's file name stem, "col_row" like vips dzsave.
func (r TileRecord) Name() string { return fmt.Sprintf("%d_%d", r.Col, r.Row) }

// TileOptions describes a tiling and its export.
type TileOptions struct {
	TileSize  int     // default 256
	Overlap   int     // pixels shared by neighbouring tiles, < TileSize
	Level     int     // slide level to tile
	MinTissue float64 // keep tiles whose tissue fraction is ≥ this (0 keeps all)
	// Tissue is a precomputed tissue map; nil detects one with default options.
	Tissue *TissueMap
	// Mask, when set, fills TumourFrac (each worker reopens it by path).
	Mask *Mask
	// Export only:
	Format  string // "jpeg" (default) or "png"
	Quality int    // JPEG quality, default 75 (as vips)
	Workers int    // default GOMAXPROCS
	// Skip reports tiles already exported (a resumed run); they are neither
	// rewritten nor passed to done.
	Skip func(TileRecord) bool
}

func (o *TileOptions) check(s *Slide) error {
	if o.TileSize == 0 {
		o.TileSize = 256
	}
	if o.TileSize < 1 || o.Overlap < 0 || o.Overlap >= o.TileSize {
		return fmt.Errorf("tile size %d overlap %d: need 0 ≤ overlap < size", o.TileSize, o.Overlap)
	}
	if o.Level < 0 || o.Level >= s.Levels() {
		return fmt.Errorf("tile level %d: slide has %d levels: %w", o.Level, s.Levels(), ErrLevel)
	}
	if o.MinTissue < 0 || o.MinTissue > 1 {
		return fmt.Errorf("min tissue %g: must be in [0, 1]", o.MinTissue)
	}
	switch o.Format {
	case "":
		o.Format = "jpeg"
	case "jpeg", "png":
	default:
		return fmt.Errorf("tile format %q: want jpeg or png", o.Format)
	}
	if o.Quality == 0 {
		o.Quality = 75
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return nil
}

// gridCount is the number of tiles of size `size` and stride `stride` needed
// to cover n pixels; the last tile may hang over the edge.
func gridCount(n, size, stride int) int {
	if n <= size {
		return 1
	}
	return 1 + ceilDiv(n-size, stride)
}

// level0Rect maps a rectangle of level lvl to level-0 pixels.
func (s *Slide) level0Rect(lvl int, r image.Rectangle) image.Rectangle {
	fx, fy := s.Downsample(lvl)
	return image.Rect(int(float64(r.Min.X)*fx), int(float64(r.Min.Y)*fy),
		int(float64(r.Max.X)*fx), int(float64(r.Max.Y)*fy))
}

// grid lists every tile with its tissue fraction ≥ MinTissue, row-major.
func grid(s *Slide, o *TileOptions) ([]TileRecord, error) {
	if o.Tissue == nil {
		t, err := DetectTissue(s, TissueOptions{})
		if err != nil {
			return nil, err
		}
		o.Tissue = t
	}
	sz := s.Size(o.Level)
	stride := o.TileSize - o.Overlap
	nx, ny := gridCount(sz.X, o.TileSize, stride), gridCount(sz.Y, o.TileSize, stride)
	var recs []TileRecord
	for row := 0; row < ny; row++ {
		for col := 0; col < nx; col++ {
			r := TileRecord{Col: col, Row: row, X: col * stride, Y: row * stride, Level: o.Level, Size: o.TileSize}
			r.TissueFrac = o.Tissue.Fraction(s.level0Rect(o.Level, r.Rect()))
			if r.TissueFrac >= o.MinTissue {
				recs = append(recs, r)
			}
		}
	}
	return recs, nil
}

// PlanTiles lists the tiles of a slide that pass MinTissue, row-major, with
// tissue and (if opts.Mask is set) tumour fractions. It reads no level-0
// pixels except the mask.
func PlanTiles(ctx context.Context, s *Slide, opts TileOptions) ([]TileRecord, error) {
	if err := opts.check(s); err != nil {
		return nil, fmt.Errorf("plan tiles %s: %w", s.Path(), err)
	}
	recs, err := grid(s, &opts)
	if err != nil {
		return nil, fmt.Errorf("plan tiles %s: %w", s.Path(), err)
	}
	if opts.Mask == nil {
		return recs, nil
	}
	for i := range recs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, err := opts.Mask.Fraction(s.level0Rect(opts.Level, recs[i].Rect()))
		if err != nil {
			return nil, fmt.Errorf("plan tiles %s: tile %s: %w", s.Path(), recs[i].Name(), err)
		}
		recs[i].TumourFrac = f
	}
	return recs, nil
}

// ExportTiles writes every tile passing MinTissue (and not skipped) to
// outDir/COL_ROW.jpeg|png, on opts.Workers goroutines, each with its own
// GDAL handle. Edge tiles are padded with white to the full size. Each file
// is written under a temporary name and renamed, so a killed run leaves only
// complete tiles. done is called from one goroutine per finished tile, in
// completion order; an error from done stops the export and is returned.
func ExportTiles(ctx context.Context, s *Slide, opts TileOptions, outDir string, done func(TileRecord) error) error {
	if err := opts.check(s); err != nil {
		return fmt.Errorf("export tiles %s: %w", s.Path(), err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("export tiles %s: %w", s.Path(), err)
	}
	recs, err := grid(s, &opts)
	if err != nil {
		return fmt.Errorf("export tiles %s: %w", s.Path(), err)
	}
	if opts.Skip != nil {
		kept := recs[:0]
		for _, r := range recs {
			if !opts.Skip(r) {
				kept = append(kept, r)
			}
		}
		recs = kept
	}
	err = parallelTiles(ctx, s, opts, recs, func(w *tileWorker, r *TileRecord) error {
		return w.export(r, outDir)
	}, done)
	if err != nil {
		return fmt.Errorf("export tiles %s: %w", s.Path(), err)
	}
	return nil
}

// tileWorker owns per-goroutine GDAL handles and buffers.
type tileWorker struct {
	s    *Slide
	mask *Mask
	opts *TileOptions
	img  *image.NRGBA
	enc  png.Encoder
	bw   *bufio.Writer
}

func (w *tileWorker) close() {
	w.s.Close()
	if w.mask != nil {
		w.mask.Close()
	}
}

func (w *tileWorker) export(r *TileRecord, outDir string) error {
	w.img.Rect = r.Rect()
	if err := w.s.ReadRegionInto(r.Level, w.img); err != nil {
		return err
	}
	if w.mask != nil {
		f, err := w.mask.Fraction(w.s.level0Rect(r.Level, r.Rect()))
		if err != nil {
			return err
		}
		r.TumourFrac = f
	}
	name := filepath.Join(outDir, r.Name()+"."+w.opts.Format)
	tmp := filepath.Join(outDir, "."+r.Name()+"."+w.opts.Format+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w.bw.Reset(f)
	if w.opts.Format == "png" {
		err = w.enc.Encode(w.bw, w.img)
	} else {
		err = encodeJPEG(w.bw, opaqueRGBA(w.img, w.s.Opaque()), w.opts.Quality)
	}
	if err == nil {
		err = w.bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// opaqueRGBA views an NRGBA image as RGBA for the JPEG encoder, flattening
// translucent pixels onto white first.
func opaqueRGBA(m *image.NRGBA, opaque bool) *image.RGBA {
	if opaque {
		return &image.RGBA{Pix: m.Pix, Stride: m.Stride, Rect: m.Rect}
	}
	for i := 3; i < len(m.Pix); i += 4 {
		if a := uint32(m.Pix[i]); a != 255 {
			for c := 1; c <= 3; c++ {
				v := uint32(m.Pix[i-c])
				m.Pix[i-c] = uint8((v*a + 255*(255-a) + 127) / 255)
			}
			m.Pix[i] = 255
		}
	}
	return &image.RGBA{Pix: m.Pix, Stride: m.Stride, Rect: m.Rect}
}

// parallelTiles runs fn over recs on opts.Workers goroutines and reports each
// finished record to done from the calling goroutine.
func parallelTiles(ctx context.Context, s *Slide, opts TileOptions, recs []TileRecord,
	fn func(*tileWorker, *TileRecord) error, done func(TileRecord) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nw := min(opts.Workers, max(len(recs), 1))
	workers := make([]*tileWorker, 0, nw)
	defer func() {
		for _, w := range workers {
			w.close()
		}
	}()
	for i := 0; i < nw; i++ {
		ws, err := Open(s.Path())
		if err != nil {
			return err
		}
		w := &tileWorker{s: ws, opts: &opts, img: image.NewNRGBA(image.Rect(0, 0, opts.TileSize, opts.TileSize)),
			enc: png.Encoder{CompressionLevel: png.BestSpeed}, bw: bufio.NewWriterSize(nil, 64<<10)}
		workers = append(workers, w)
		if opts.Mask != nil {
			if w.mask, err = OpenMask(opts.Mask.Path(), opts.Mask.Size()); err != nil {
				return err
			}
		}
	}
	jobs := make(chan int)
	type result struct {
		i   int
		err error
	}
	results := make(chan result, nw)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				err := fn(w, &recs[i])
				if err != nil {
					err = fmt.Errorf("tile %s: %w", recs[i].Name(), err)
				}
				results <- result{i, err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := range recs {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	var firstErr error
	for res := range results {
		if firstErr != nil {
			continue // drain so workers can exit
		}
		err := res.err
		if err == nil && done != nil {
			err = done(recs[res.i])
		}
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			firstErr = err
			cancel()
		}
	}
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}
