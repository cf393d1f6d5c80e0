package segment

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dl4img/dl4img/segment/slide"
	"github.com/dl4img/dl4img/tasks"
)

// Tile is one row of the tile manifest: a tile of a slide, its tissue and
// ground-truth tumour fractions, and the split it belongs to.
type Tile struct {
	Slide string `json:"slide"` // slide file name (no directory)
	slide.TileRecord
	Split string `json:"split,omitempty"` // "train", "val", "test" (empty before the split)
}

// Key identifies a tile across runs: "SLIDE:COL_ROW", the DoneItems key of
// the tiling task.
func (t Tile) Key() string { return t.Slide + ":" + t.Name() }

var manifestHeader = []string{"slide", "col", "row", "x", "y", "level", "size", "tissue_fraction", "tumour_fraction", "split"}

func (t Tile) record() []string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	return []string{t.Slide, strconv.Itoa(t.Col), strconv.Itoa(t.Row), strconv.Itoa(t.X), strconv.Itoa(t.Y),
		strconv.Itoa(t.Level), strconv.Itoa(t.Size), f(t.TissueFrac), f(t.TumourFrac), t.Split}
}

func parseTile(rec []string) (Tile, error) {
	if len(rec) != len(manifestHeader) {
		return Tile{}, fmt.Errorf("want %d columns, got %d", len(manifestHeader), len(rec))
	}
	var t Tile
	var errs [8]error
	t.Slide = rec[0]
	t.Col, errs[0] = strconv.Atoi(rec[1])
	t.Row, errs[1] = strconv.Atoi(rec[2])
	t.X, errs[2] = strconv.Atoi(rec[3])
	t.Y, errs[3] = strconv.Atoi(rec[4])
	t.Level, errs[4] = strconv.Atoi(rec[5])
	t.Size, errs[5] = strconv.Atoi(rec[6])
	t.TissueFrac, errs[6] = strconv.ParseFloat(rec[7], 64)
	t.TumourFrac, errs[7] = strconv.ParseFloat(rec[8], 64)
	t.Split = rec[9]
	if err := errors.Join(errs[:]...); err != nil {
		// strconv's errors quote the field: one line per bad field, joined.
		return Tile{}, errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return t, t.check()
}

// maxTileSize bounds a tile's side (a tile is read into memory whole:
// 8192² RGBA is 256 MB); the tiler writes 256 to 1024.
const maxTileSize = 8192

// check refuses a tile no tiler writes: the manifest is a file in the
// workdir that a person may edit, and its numbers size reads and buffers.
func (t Tile) check() error {
	bad := func(f string, a ...any) error { return fmt.Errorf(f, a...) }
	switch {
	case t.Slide == "" || t.Slide != filepath.Base(t.Slide) || t.Slide == "." || t.Slide == "..":
		return bad("slide %q: want a file name", t.Slide)
	case t.Size <= 0 || t.Size > maxTileSize:
		return bad("size %d: want 1 to %d", t.Size, maxTileSize)
	case t.Col < 0 || t.Row < 0 || t.X < 0 || t.Y < 0 || t.Level < 0 || t.Level > 30:
		return bad("col, row, x, y must be >= 0 and level 0 to 30")
	case t.X > math.MaxInt32-t.Size || t.Y > math.MaxInt32-t.Size:
		return bad("tile at %d,%d is beyond any slide", t.X, t.Y)
	case !(t.TissueFrac >= 0 && t.TissueFrac <= 1) || !(t.TumourFrac >= 0 && t.TumourFrac <= 1):
		return bad("fractions must be in [0, 1]")
	}
	switch t.Split {
	case "", "train", "val", "test":
		return nil
	}
	return bad("split %q: want train, val or test", t.Split)
}

// WriteManifest writes tiles as CSV (atomically).
func WriteManifest(path string, tiles []Tile) error {
	return tasks.WriteFileAtomic(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write(manifestHeader)
		for _, t := range tiles {
			cw.Write(t.record())
		}
		cw.Flush()
		return cw.Error()
	})
}

// ReadManifest reads a manifest written by WriteManifest.
func ReadManifest(path string) ([]Tile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	defer f.Close()
	cr := csv.NewReader(bufio.NewReader(f))
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	if strings.Join(head, ",") != strings.Join(manifestHeader, ",") {
		return nil, fmt.Errorf("manifest %s:1: header %q, want %q", path, strings.Join(head, ","), strings.Join(manifestHeader, ","))
	}
	var tiles []Tile
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("manifest %s:%d: %w", path, line, err)
		}
		t, err := parseTile(rec)
		if err != nil {
			return nil, fmt.Errorf("manifest %s:%d: %w", path, line, err)
		}
		tiles = append(tiles, t)
	}
	return tiles, nil
}

// tileLog is the append-only journal of finished tiles of a tiling task:
// one CSV line per tile, written (and flushed to the OS) before the tile is
// marked done, so a killed task loses at most the line being written, which
// openTileLog drops.
type tileLog struct {
	f    *os.File
	w    *csv.Writer
	done map[string]Tile
	// order keeps the journal order, so the manifest does not depend on
	// where a run was interrupted (it is sorted anyway, see tileTask).
	order []string
}

func openTileLog(path string) (*tileLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tile journal: %w", err)
	}
	l := &tileLog{f: f, done: map[string]Tile{}}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tile journal %s: %w", path, err)
	}
	good := 0
	for good < len(data) {
		nl := strings.IndexByte(string(data[good:]), '\n')
		if nl < 0 {
			break // torn last line
		}
		line := string(data[good : good+nl])
		rec, err := csv.NewReader(strings.NewReader(line)).Read()
		if err != nil {
			break
		}
		t, err := parseTile(rec)
		if err != nil {
			break
		}
		if _, dup := l.done[t.Key()]; !dup {
			l.order = append(l.order, t.Key())
		}
		l.done[t.Key()] = t
		good += nl + 1
	}
	if good < len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, fmt.Errorf("tile journal %s: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("tile journal %s: %w", path, err)
	}
	l.w = csv.NewWriter(f)
	return l, nil
}

// add journals a finished tile.
func (l *tileLog) add(t Tile) error {
	l.w.Write(t.record())
	l.w.Flush()
	if err := l.w.Error(); err != nil {
		return fmt.Errorf("tile journal: %w", err)
	}
	if _, dup := l.done[t.Key()]; !dup {
		l.order = append(l.order, t.Key())
	}
	l.done[t.Key()] = t
	return nil
}

func (l *tileLog) close() error {
	if err := l.f.Sync(); err != nil {
		l.f.Close()
		return err
	}
	return l.f.Close()
}
