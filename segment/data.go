package segment

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dl4img/dl4img/segment/slide"
	"github.com/dl4img/dl4img/tasks"
)

// slideEntry is one slide of the job, as the data task indexed it.
type slideEntry struct {
	Name string `json:"name"` // file name, unique within the job
	Path string `json:"path"`
	Mask string `json:"mask,omitempty"`
	Test bool   `json:"test"`
}

func indexPath(env tasks.Env) string { return indexFile(env.JobDir()) }

// indexFile is the data task's slide index in a job directory.
func indexFile(jobDir string) string { return filepath.Join(jobDir, "data", "slides.json") }

var slideExts = map[string]bool{".tif": true, ".tiff": true, ".svs": true, ".png": true, ".jpg": true, ".jpeg": true,
	".ndpi": true, ".vrt": true, ".btf": true}

// isMaskName tells mask files that share a folder with their slides.
func isMaskName(name string) bool {
	stem := strings.ToLower(strings.TrimSuffix(name, filepath.Ext(name)))
	for _, s := range []string{"_mask", "-mask", ".mask", "_tumor", "_tumour"} {
		if strings.HasSuffix(stem, s) {
			return true
		}
	}
	return false
}

// listSlides lists the slide files of a folder, sorted by name.
func listSlides(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("slides folder: %w", err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || !slideExts[strings.ToLower(filepath.Ext(n))] || isMaskName(n) {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	sort.Strings(out)
	return out, nil
}

// FindMask returns the ground-truth mask of slidePath in dir ("" if none):
// STEM_mask.*, STEM-mask.*, STEM_tumor.*, STEM.geojson, or STEM.* when dir
// is not the slide's own folder.
func FindMask(dir, slidePath string) string {
	stem := strings.TrimSuffix(filepath.Base(slidePath), filepath.Ext(slidePath))
	same := filepath.Clean(dir) == filepath.Clean(filepath.Dir(slidePath))
	for _, suf := range []string{"_mask", "-mask", ".mask", "_tumor", "_tumour", ""} {
		for _, ext := range []string{".tif", ".tiff", ".png", ".geojson", ".json", ".jpg"} {
			p := filepath.Join(dir, stem+suf+ext)
			if suf == "" && same && ext != ".geojson" && ext != ".json" {
				continue // that is the slide itself or a sibling slide
			}
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && filepath.Clean(p) != filepath.Clean(slidePath) {
				return p
			}
		}
	}
	return ""
}

// dataTask generates synthetic slides when no folder is given, then indexes
// slides, masks and the train/test assignment into data/slides.json.
func dataTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	slidesDir, masksDir := p.Slides, p.Masks
	if slidesDir == "" {
		slidesDir = filepath.Join(env.JobDir(), "data", "slides")
		masksDir = filepath.Join(env.JobDir(), "data", "masks")
		if err := generateSlides(ctx, env, p, slidesDir, masksDir); err != nil {
			return err
		}
	}
	if masksDir == "" {
		masksDir = slidesDir
	}
	train, err := listSlides(slidesDir)
	if err != nil {
		return fmt.Errorf("parameter slides: %w", err)
	}
	var test []string
	if p.TestDir != "" {
		if test, err = listSlides(p.TestDir); err != nil {
			return fmt.Errorf("parameter test_dir: %w", err)
		}
	} else if p.TestSlides > 0 {
		if len(train) <= p.TestSlides {
			return fmt.Errorf("parameter test_slides %d: %s has only %d slides; need at least one left to train on",
				p.TestSlides, slidesDir, len(train))
		}
		test = train[len(train)-p.TestSlides:]
		train = train[:len(train)-p.TestSlides]
	}
	if len(train) == 0 {
		return fmt.Errorf("parameter slides: no slides in %s", slidesDir)
	}
	var idx []slideEntry
	seen := map[string]bool{}
	add := func(paths []string, isTest bool) error {
		for _, s := range paths {
			e := slideEntry{Name: filepath.Base(s), Path: s, Mask: FindMask(masksDir, s), Test: isTest}
			if e.Mask == "" && p.TestDir != "" && isTest {
				e.Mask = FindMask(p.TestDir, s)
			}
			if seen[e.Name] {
				return fmt.Errorf("slide name %s appears twice (slides and test_dir)", e.Name)
			}
			seen[e.Name] = true
			if !isTest && e.Mask == "" {
				return fmt.Errorf("slide %s: no mask in %s (want %s_mask.tif, .png or .geojson)", s, masksDir,
					strings.TrimSuffix(e.Name, filepath.Ext(e.Name)))
			}
			idx = append(idx, e)
		}
		return nil
	}
	if err := add(train, false); err != nil {
		return err
	}
	if err := add(test, true); err != nil {
		return err
	}
	env.Logf("%d training slides, %d test slides", len(train), len(test))
	return tasks.WriteJSONFile(indexPath(env), idx)
}

func generateSlides(ctx context.Context, env tasks.Env, p *Params, slidesDir, masksDir string) error {
	for _, d := range []string{slidesDir, masksDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for i := range p.SynthSlides {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := fmt.Sprintf("slide-%02d", i+1)
		img, mask := filepath.Join(slidesDir, name+".tif"), filepath.Join(masksDir, name+"_mask.tif")
		_, e1 := os.Stat(img)
		_, e2 := os.Stat(mask)
		if e1 == nil && e2 == nil {
			continue // GenerateSlide renames both into place only when complete
		}
		cfg := slide.GenConfig{Width: p.SynthSize, Height: p.SynthSize, Seed: p.Seed*1000 + int64(i),
			TumourFraction: p.SynthTumour}
		if err := slide.GenerateSlide(ctx, cfg, img, mask); err != nil {
			return err
		}
		env.Progress("generate slides", i+1, p.SynthSlides)
	}
	return nil
}

func readIndex(env tasks.Env) ([]slideEntry, error) { return readIndexFile(indexPath(env)) }

func readIndexFile(path string) ([]slideEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("slide index (data task): %w", err)
	}
	var idx []slideEntry
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("slide index %s: %w", path, err)
	}
	return idx, nil
}
