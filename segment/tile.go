package segment

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dl4img/dl4img/segment/slide"
	"github.com/dl4img/dl4img/tasks"
)

func tilesDir(env tasks.Env) string     { return filepath.Join(env.JobDir(), "tiles") }
func manifestPath(env tasks.Env) string { return filepath.Join(tilesDir(env), "manifest.csv") }

// markBatch is how many finished tiles are recorded in the store at once;
// the journal (written first, per tile) covers the ones in between.
const markBatch = 64

// tileTask tiles every slide over its tissue, records each tile's tumour
// fraction (and exports it if tile_format is set), then writes the manifest
// with the train/val/test split. A killed run continues at the next tile:
// finished tiles are in the journal and in the task's done items.
func tileTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	idx, err := readIndex(env)
	if err != nil {
		return err
	}
	_, err = tileSlides(ctx, env, p, idx, nil)
	return err
}

// tileSlides is tileTask's body; onTile (tests) sees every tile processed
// by this run.
func tileSlides(ctx context.Context, env tasks.Env, p *Params, idx []slideEntry, onTile func(key string)) ([]Tile, error) {
	if err := os.MkdirAll(tilesDir(env), 0o755); err != nil {
		return nil, err
	}
	jl, err := openTileLog(filepath.Join(tilesDir(env), "journal.csv"))
	if err != nil {
		return nil, err
	}
	defer jl.close()
	marked, err := env.DoneItems()
	if err != nil {
		return nil, err
	}
	pending := map[string]string{}
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		err := putTiles(env, pending)
		clear(pending)
		return err
	}
	record := func(t Tile) error {
		if err := jl.add(t); err != nil {
			return err
		}
		if onTile != nil {
			onTile(t.Key())
		}
		row, err := json.Marshal(t)
		if err != nil {
			return err
		}
		pending[t.Key()] = string(row)
		if len(pending) >= markBatch {
			return flush()
		}
		return nil
	}
	for i, e := range idx {
		err := tileSlide(ctx, p, e, jl, marked, record, filepath.Join(tilesDir(env), strings.TrimSuffix(e.Name, filepath.Ext(e.Name))))
		if ferr := flush(); err == nil {
			err = ferr
		}
		if err != nil {
			return nil, err
		}
		env.Progress("tile slides", i+1, len(idx))
	}
	tiles := make([]Tile, 0, len(jl.done))
	test := map[string]bool{}
	for _, e := range idx {
		test[e.Name] = e.Test
	}
	for _, t := range jl.done {
		if _, ok := test[t.Slide]; !ok {
			continue // a slide no longer in the index
		}
		t.Split = split(t, test[t.Slide], p)
		tiles = append(tiles, t)
	}
	sort.Slice(tiles, func(i, j int) bool {
		a, b := tiles[i], tiles[j]
		if a.Slide != b.Slide {
			return a.Slide < b.Slide
		}
		if a.Row != b.Row {
			return a.Row < b.Row
		}
		return a.Col < b.Col
	})
	// The manifest lives in the store (the tiling task's items, one JSON
	// row per tile, now with its split) and, for people and tools, as CSV.
	rows := make(map[string]string, len(tiles))
	for _, t := range tiles {
		row, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		rows[t.Key()] = string(row)
	}
	if err := putTiles(env, rows); err != nil {
		return nil, err
	}
	if err := WriteManifest(manifestPath(env), tiles); err != nil {
		return nil, err
	}
	n := map[string]int{}
	for _, t := range tiles {
		n[t.Split]++
	}
	env.Logf("manifest %s: %d train, %d val, %d test tiles", manifestPath(env), n["train"], n["val"], n["test"])
	if n["train"] == 0 {
		return nil, fmt.Errorf("no training tiles with min_tissue %g at level %d: lower min_tissue or check the slides", p.MinTissue, p.Level)
	}
	return tiles, nil
}

func putTiles(env tasks.Env, rows map[string]string) error {
	if err := env.PutItems(rows); err != nil {
		return fmt.Errorf("record tiles in the store: %w", err)
	}
	return nil
}

// split assigns a tile deterministically (by seed and key) to val with
// probability val_fraction; tiles of test slides are "test".
func split(t Tile, test bool, p *Params) string {
	if test {
		return "test"
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d:%s", p.Seed, t.Key())
	if float64(h.Sum64()%1_000_000)/1e6 < p.ValFraction {
		return "val"
	}
	return "train"
}

func tileSlide(ctx context.Context, p *Params, e slideEntry, jl *tileLog, marked map[string]bool,
	record func(Tile) error, exportDir string) error {
	s, err := slide.Open(e.Path)
	if err != nil {
		return err
	}
	defer s.Close()
	if p.Level >= s.Levels() {
		return fmt.Errorf("parameter level %d: slide %s has %d levels", p.Level, e.Path, s.Levels())
	}
	var mask *slide.Mask
	if e.Mask != "" {
		if mask, err = slide.OpenMask(e.Mask, s.Size(0)); err != nil {
			return err
		}
		defer mask.Close()
	}
	tissue, err := slide.DetectTissue(s, slide.TissueOptions{})
	if err != nil {
		return fmt.Errorf("slide %s: %w", e.Path, err)
	}
	opts := slide.TileOptions{TileSize: p.TileSize, Overlap: p.Overlap, Level: p.Level, MinTissue: p.MinTissue,
		Tissue: tissue, Mask: mask}
	done := func(r slide.TileRecord) bool {
		k := e.Name + ":" + r.Name()
		_, inLog := jl.done[k]
		return inLog || marked[k]
	}
	if p.TileFormat != "none" {
		opts.Format = p.TileFormat
		opts.Skip = done
		return slide.ExportTiles(ctx, s, opts, exportDir, func(r slide.TileRecord) error {
			return record(Tile{Slide: e.Name, TileRecord: r})
		})
	}
	// Without export only the tumour fraction is computed per tile.
	opts.Mask = nil
	recs, err := slide.PlanTiles(ctx, s, opts)
	if err != nil {
		return err
	}
	fx, fy := s.Downsample(p.Level)
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if done(r) {
			continue
		}
		if mask != nil {
			rr := r.Rect()
			r0 := scaleRect(rr, fx, fy)
			if r.TumourFrac, err = mask.Fraction(r0); err != nil {
				return fmt.Errorf("slide %s tile %s: %w", e.Name, r.Name(), err)
			}
		}
		if err := record(Tile{Slide: e.Name, TileRecord: r}); err != nil {
			return err
		}
	}
	return nil
}
