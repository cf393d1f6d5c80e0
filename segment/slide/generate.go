package slide

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/airbusgeo/godal"
)

// GenConfig describes a synthetic H&E-like slide.
type GenConfig struct {
	Width, Height int   // pixels at level 0; up to 100k × 100k (and beyond)
	Seed          int64 // same seed and config give the same pixels
	// TumourFraction is roughly the share of tissue covered by tumour
	// (default 0.3; 0 still allows tiny spots).
	TumourFraction float64
	TileSize       int    // TIFF block size, default 256
	Compression    string // "JPEG" (default) or "DEFLATE"
	Quality        int    // JPEG quality, default 90
	NoOverviews    bool   // skip the pyramid (faster; levels are then decimated reads)
	Workers        int    // rendering goroutines, default GOMAXPROCS
	// Progress is called from one goroutine after each finished tile row of
	// blocks and once at the end with done == total.
	Progress func(done, total int)
}

func (c *GenConfig) defaults() error {
	if c.Width <= 0 || c.Height <= 0 {
		return fmt.Errorf("slide size %dx%d: must be positive", c.Width, c.Height)
	}
	if c.TumourFraction == 0 {
		c.TumourFraction = 0.3
	}
	if c.TumourFraction < 0 || c.TumourFraction > 1 {
		return fmt.Errorf("tumour fraction %g: must be in [0, 1]", c.TumourFraction)
	}
	if c.TileSize == 0 {
		c.TileSize = 256
	}
	if c.TileSize%16 != 0 || c.TileSize < 16 {
		return fmt.Errorf("tile size %d: must be a positive multiple of 16 (TIFF)", c.TileSize)
	}
	switch c.Compression {
	case "":
		c.Compression = "JPEG"
	case "JPEG", "DEFLATE":
	default:
		return fmt.Errorf("compression %q: want JPEG or DEFLATE", c.Compression)
	}
	if c.Quality == 0 {
		c.Quality = 90
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return nil
}

// GenerateSlide writes a synthetic slide to path (tiled BigTIFF, RGB, JPEG or
// deflate, with overviews) and its exact ground truth to maskPath (tiled
// deflate BigTIFF, one band, 255 = tumour, 0 = rest, with nearest-neighbour
// overviews). Tiles are rendered in parallel and written in order, so memory
// holds only a bounded number of tiles whatever the slide size. Both files are
// written under temporary names and renamed when complete.
func GenerateSlide(ctx context.Context, cfg GenConfig, path, maskPath string) (err error) {
	if err := cfg.defaults(); err != nil {
		return fmt.Errorf("generate %s: %w", path, err)
	}
	initGDAL()
	syn := newSynth(cfg.Width, cfg.Height, cfg.Seed, cfg.TumourFraction)
	ts := cfg.TileSize
	common := []string{"TILED=YES", "BIGTIFF=YES",
		"BLOCKXSIZE=" + strconv.Itoa(ts), "BLOCKYSIZE=" + strconv.Itoa(ts)}
	var imgOpts []string
	if cfg.Compression == "JPEG" {
		imgOpts = append(common, "COMPRESS=JPEG", "PHOTOMETRIC=YCBCR", "JPEG_QUALITY="+strconv.Itoa(cfg.Quality))
	} else {
		imgOpts = append(common, "COMPRESS=DEFLATE", "PREDICTOR=2", "INTERLEAVE=PIXEL")
	}
	tmpImg := tempName(path)
	tmpMask := tempName(maskPath)
	defer func() {
		if err != nil {
			os.Remove(tmpImg)
			os.Remove(tmpMask)
		}
	}()
	img, err := godal.Create(godal.GTiff, tmpImg, 3, godal.Byte, cfg.Width, cfg.Height,
		godal.CreationOption(imgOpts...), failuresOnly())
	if err != nil {
		return fmt.Errorf("generate %s: create: %w", path, err)
	}
	msk, err := godal.Create(godal.GTiff, tmpMask, 1, godal.Byte, cfg.Width, cfg.Height,
		godal.CreationOption(append(common, "COMPRESS=DEFLATE")...), failuresOnly())
	if err != nil {
		img.Close()
		return fmt.Errorf("generate %s: create mask: %w", maskPath, err)
	}
	closeAll := func() error {
		return errors.Join(img.Close(failuresOnly()), msk.Close(failuresOnly()))
	}
	if err := writeSynth(ctx, &cfg, syn, img, msk); err != nil {
		closeAll()
		return fmt.Errorf("generate %s: %w", path, err)
	}
	if !cfg.NoOverviews {
		ovr := []string{"COMPRESS_OVERVIEW=" + cfg.Compression, "JPEG_QUALITY_OVERVIEW=" + strconv.Itoa(cfg.Quality),
			"GDAL_TIFF_OVR_BLOCKSIZE=" + strconv.Itoa(ts)}
		if cfg.Compression == "JPEG" {
			ovr = append(ovr, "PHOTOMETRIC_OVERVIEW=YCBCR")
		}
		if err := img.BuildOverviews(godal.Resampling(godal.Average), godal.MinSize(ts),
			godal.ConfigOption(ovr...), failuresOnly()); err != nil {
			closeAll()
			return fmt.Errorf("generate %s: overviews: %w", path, err)
		}
		if err := msk.BuildOverviews(godal.Resampling(godal.Nearest), godal.MinSize(ts),
			godal.ConfigOption("COMPRESS_OVERVIEW=DEFLATE", "GDAL_TIFF_OVR_BLOCKSIZE="+strconv.Itoa(ts)),
			failuresOnly()); err != nil {
			closeAll()
			return fmt.Errorf("generate %s: mask overviews: %w", maskPath, err)
		}
	}
	if err := closeAll(); err != nil {
		return fmt.Errorf("generate %s: close: %w", path, err)
	}
	if err := os.Rename(tmpImg, path); err != nil {
		return fmt.Errorf("generate %s: %w", path, err)
	}
	if err := os.Rename(tmpMask, maskPath); err != nil {
		return fmt.Errorf("generate %s: %w", maskPath, err)
	}
	return nil
}

// tempName is a hidden sibling of path, so the final rename is atomic. The
// .tif suffix keeps GDAL's driver guess right.
func tempName(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp.tif")
}

type synthTile struct {
	x, y, w, h int
	rgb, mask  []byte
}

// writeSynth renders blocks on cfg.Workers goroutines and writes them in
// row-major order; at most 2×Workers blocks are in memory.
func writeSynth(ctx context.Context, cfg *GenConfig, syn *synth, img, msk *godal.Dataset) error {
	ts := cfg.TileSize
	nx, ny := ceilDiv(cfg.Width, ts), ceilDiv(cfg.Height, ts)
	total := nx * ny
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	order := make(chan chan synthTile, 2*cfg.Workers)
	type job struct {
		i   int
		out chan synthTile
	}
	work := make(chan job)
	go func() {
		defer close(order)
		defer close(work)
		for i := 0; i < total; i++ {
			out := make(chan synthTile, 1)
			select {
			case order <- out:
			case <-ctx.Done():
				return
			}
			select {
			case work <- job{i, out}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for w := 0; w < cfg.Workers; w++ {
		go func() {
			for j := range work {
				tx, ty := (j.i%nx)*ts, (j.i/nx)*ts
				t := synthTile{x: tx, y: ty, w: min(ts, cfg.Width-tx), h: min(ts, cfg.Height-ty)}
				t.rgb = make([]byte, 3*t.w*t.h)
				t.mask = make([]byte, t.w*t.h)
				syn.render(int64(t.x), int64(t.y), t.w, t.h, t.rgb, t.mask)
				j.out <- t
			}
		}()
	}
	done := 0
	for out := range order {
		var t synthTile
		select {
		case t = <-out:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := img.Write(t.x, t.y, t.rgb, t.w, t.h, failuresOnly()); err != nil {
			return fmt.Errorf("write block %d,%d: %w", t.x, t.y, err)
		}
		if err := msk.Write(t.x, t.y, t.mask, t.w, t.h, failuresOnly()); err != nil {
			return fmt.Errorf("write mask block %d,%d: %w", t.x, t.y, err)
		}
		done++
		if cfg.Progress != nil && (done%nx == 0 || done == total) {
			cfg.Progress(done, total)
		}
	}
	if done < total {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fmt.Errorf("rendered %d of %d blocks", done, total)
	}
	return nil
}
