package transfer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Item is one image file of a dataset.
type Item struct {
	Path  string // on disk
	Rel   string // as reported: "train/cat.9.jpg"
	Label int    // class index; -1 in a test set
	ID    string // test id (file name without extension)
}

// Dataset is a training set: its class names (sorted) and labelled items.
type Dataset struct {
	Classes []string
	Items   []Item
}

var imageExt = map[string]bool{".jpg": true, ".jpeg": true, ".png": true}

// listFiles returns the regular, non-hidden files of dir, sorted.
func listFiles(dir string) (files, dirs []string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		} else if e.Type().IsRegular() {
			files = append(files, e.Name())
		}
	}
	return files, dirs, nil
}

// BadFileError is a file that cannot be used (not an image, or a name that
// says no class). It prints as "train/cat.9.jpg: not an image".
type BadFileError struct {
	Rel    string
	Reason string
}

func (e *BadFileError) Error() string { return e.Rel + ": " + e.Reason }

// ListTrain reads a training folder in either layout: Kaggle's flat
// train/<class>.<n>.<ext> or train/<class>/<any>. Files that cannot be
// labelled are errors unless skipBad (then they are returned in bad).
func ListTrain(dir string, skipBad bool) (ds Dataset, bad []error, err error) {
	files, dirs, err := listFiles(dir)
	if err != nil {
		return ds, nil, fmt.Errorf("train_dir: %w", err)
	}
	base := filepath.Base(filepath.Clean(dir))
	classIdx := map[string]int{}
	type pending struct {
		path, rel, class string
	}
	var items []pending
	if len(dirs) > 0 {
		for _, d := range dirs {
			fs, _, err := listFiles(filepath.Join(dir, d))
			if err != nil {
				return ds, nil, fmt.Errorf("train_dir: %w", err)
			}
			for _, f := range fs {
				items = append(items, pending{filepath.Join(dir, d, f), base + "/" + d + "/" + f, d})
			}
		}
		for _, f := range files {
			e := &BadFileError{base + "/" + f, "file outside the class folders"}
			if !skipBad {
				return ds, nil, e
			}
			bad = append(bad, e)
		}
	} else {
		for _, f := range files {
			cls, rest, ok := strings.Cut(f, ".")
			if !ok || cls == "" || !strings.Contains(rest, ".") {
				e := &BadFileError{base + "/" + f, "name is not <class>.<id>.<ext>"}
				if !skipBad {
					return ds, nil, e
				}
				bad = append(bad, e)
				continue
			}
			items = append(items, pending{filepath.Join(dir, f), base + "/" + f, cls})
		}
	}
	for _, it := range items {
		classIdx[it.class] = 0
	}
	for c := range classIdx {
		ds.Classes = append(ds.Classes, c)
	}
	sort.Strings(ds.Classes)
	for i, c := range ds.Classes {
		classIdx[c] = i
	}
	if len(ds.Classes) < 2 {
		return ds, nil, fmt.Errorf("train_dir %s: want at least 2 classes, found %v", dir, ds.Classes)
	}
	for _, it := range items {
		ds.Items = append(ds.Items, Item{Path: it.path, Rel: it.rel, Label: classIdx[it.class]})
	}
	return ds, bad, nil
}

// ListTest reads a test folder of <id>.<ext> files, sorted by numeric id
// (ids that are not numbers sort after, by name).
func ListTest(dir string) ([]Item, error) {
	files, _, err := listFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("test_dir: %w", err)
	}
	base := filepath.Base(filepath.Clean(dir))
	var items []Item
	for _, f := range files {
		id := strings.TrimSuffix(f, filepath.Ext(f))
		items = append(items, Item{Path: filepath.Join(dir, f), Rel: base + "/" + f, Label: -1, ID: id})
	}
	sort.SliceStable(items, func(i, j int) bool { return idLess(items[i].ID, items[j].ID) })
	if len(items) == 0 {
		return nil, errors.New("test_dir " + dir + ": no files")
	}
	return items, nil
}

func idLess(a, b string) bool {
	na, ea := strconv.ParseInt(a, 10, 64)
	nb, eb := strconv.ParseInt(b, 10, 64)
	switch {
	case ea == nil && eb == nil:
		return na < nb
	case ea == nil:
		return true
	case eb == nil:
		return false
	}
	return a < b
}

// SplitVal returns the indices of validation and training items: a seeded
// shuffle, the first fraction held out.
func SplitVal(n int, fraction float64, seed int64) (val, train []int) {
	perm := rand.New(rand.NewPCG(uint64(seed), 0x7a11)).Perm(n)
	nVal := int(float64(n) * fraction)
	if fraction > 0 && nVal == 0 && n > 1 {
		nVal = 1
	}
	val, train = perm[:nVal], perm[nVal:]
	sort.Ints(val)
	sort.Ints(train)
	return val, train
}
