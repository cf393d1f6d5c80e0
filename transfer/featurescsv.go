package transfer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/dl4img/dl4img/tasks"
)

// ListImages turns image files and folders (searched recursively for .jpg,
// .jpeg and .png files, hidden ones skipped) into items. An item's Rel is
// the path as given for a file, the path under the folder for a folder's
// images; items are sorted by it.
func ListImages(paths []string) ([]Item, error) {
	var items []Item
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			items = append(items, Item{Path: p, Rel: p, Label: -1})
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") && path != p {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() && imageExt[strings.ToLower(filepath.Ext(path))] {
				rel, err := filepath.Rel(p, path)
				if err != nil {
					return err
				}
				items = append(items, Item{Path: path, Rel: filepath.ToSlash(rel), Label: -1})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("no images (.jpg, .jpeg, .png) in %s", strings.Join(paths, ", "))
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Rel < items[j].Rel })
	for i := 1; i < len(items); i++ {
		if items[i].Rel == items[i-1].Rel {
			return nil, fmt.Errorf("%s: given twice", items[i].Rel)
		}
	}
	return items, nil
}

// WriteFeaturesCSV extracts the pooled features of items through ex (its
// cache makes a rerun after a kill compute only the rest) and writes them
// atomically to out as "filename,f0,f1,…", one row per image in items'
// order. Skipped bad images (ex.SkipBad) get no row.
func WriteFeaturesCSV(ctx context.Context, ex *Extractor, items []Item, out string) (rows, dim int, err error) {
	feats, _, err := ex.Run(ctx, items)
	if err != nil {
		return 0, 0, err
	}
	for _, f := range feats {
		dim = max(dim, len(f))
	}
	err = tasks.WriteFileAtomic(out, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		bw.WriteString("filename")
		for k := range dim {
			fmt.Fprintf(bw, ",f%d", k)
		}
		bw.WriteByte('\n')
		var buf []byte
		for i, f := range feats {
			if f == nil {
				continue
			}
			buf = append(buf[:0], csvField(items[i].Rel)...)
			for _, v := range f {
				buf = append(buf, ',')
				buf = strconv.AppendFloat(buf, float64(v), 'g', -1, 32)
			}
			buf = append(buf, '\n')
			if _, err := bw.Write(buf); err != nil {
				return err
			}
			rows++
		}
		return bw.Flush()
	})
	return rows, dim, err
}

// csvField quotes a file name that needs it (RFC 4180).
func csvField(s string) string {
	if !strings.ContainsAny(s, ",\"\n\r") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
