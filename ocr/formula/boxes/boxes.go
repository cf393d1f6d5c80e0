// Package boxes reads and writes boxes.csv, the line boxes of a folder of
// final-round images (filename,line,x,y,w,h): the generator writes the
// truth there and the extractor what it found, in one format so that the
// two compare.
package boxes

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"image"
	"os"
	"strconv"

	"github.com/dl4img/dl4img/internal/atomicfile"
)

// Row is one line of boxes.csv: the bounding box of line Line (counted
// from 0, top to bottom) of image File.
type Row struct {
	File string
	Line int
	Box  image.Rectangle
}

var header = []string{"filename", "line", "x", "y", "w", "h"}

// Write writes rows with a header, atomically.
func Write(path string, rows []Row) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(header)
	for _, r := range rows {
		_ = w.Write([]string{r.File, strconv.Itoa(r.Line),
			strconv.Itoa(r.Box.Min.X), strconv.Itoa(r.Box.Min.Y), strconv.Itoa(r.Box.Dx()), strconv.Itoa(r.Box.Dy())})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.WriteBytes(path, buf.Bytes())
}

// Read reads a file written by Write.
func Read(path string) ([]Row, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read boxes: %w", err)
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(recs) == 0 || fmt.Sprint(recs[0]) != fmt.Sprint(header) {
		return nil, fmt.Errorf("read %s: header must be %v", path, header)
	}
	rows := make([]Row, 0, len(recs)-1)
	for i, rec := range recs[1:] {
		var v [5]int
		for k := range v {
			v[k], err = strconv.Atoi(rec[k+1])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: column %s: %w", path, i+2, header[k+1], err)
			}
		}
		rows = append(rows, Row{File: rec[0], Line: v[0], Box: image.Rect(v[1], v[2], v[1]+v[3], v[2]+v[4])})
	}
	return rows, nil
}
