package boxes

import (
	"image"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "boxes.csv")
	rows := []Row{{"0.png", 0, image.Rect(10, 20, 110, 60)}, {"0.png", 1, image.Rect(12, 80, 300, 130)}, {"1.png", 0, image.Rect(0, 0, 5, 5)}}
	if err := Write(path, rows); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "filename,line,x,y,w,h\n0.png,0,10,20,100,40\n") {
		t.Errorf("file starts %q", data)
	}
	got, err := Read(path)
	if err != nil || !reflect.DeepEqual(got, rows) {
		t.Errorf("read back %v, %v; want %v", got, err, rows)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ data, want string }{
		"header":  {"file,line\n", "header must be"},
		"column":  {"filename,line,x,y,w,h\n0.png,0,1,2,three,4\n", ":2: column w"},
		"missing": {"", "no such file"},
	} {
		path := filepath.Join(dir, name+".csv")
		if c.data != "" {
			os.WriteFile(path, []byte(c.data), 0o644)
		}
		if _, err := Read(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
