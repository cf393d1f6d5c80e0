package segment

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/internal/fuzzguard"
)

// FuzzManifest feeds bytes to the two readers of tile lists: the manifest
// (ReadManifest) and the tiling task's journal (openTileLog). Neither
// panics; a manifest error is one line naming manifest:LINE; every tile
// read passes the tile checks; a manifest read back after writing is the
// same.
func FuzzManifest(f *testing.F) {
	head := strings.Join(manifestHeader, ",") + "\n"
	for _, seed := range []string{
		head + "a.tif,0,0,0,0,1,256,0.5,0.25,train\na.tif,1,0,256,0,1,256,1,0,val\n",
		head + "a.tif,0,0,0,0,1,1000000000,0.5,0.25,train\n",
		head + "../a.tif,0,0,-5,0,1,256,NaN,2,nope\n",
		head + `"a,b.tif",0,0,0,0,0,8,0,0,` + "\n\"unterminated\n",
		"a.tif,0,0,0,0,1,256,0.5,0.25,train\na.tif,1,0,256,0,1,256,1,0,val\nb.tif,0,0,0,0,1,256,0,0",
		"slide,col\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzguard.Deadline()()
		path := filepath.Join(dir, "manifest.csv")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		tiles, err := ReadManifest(path)
		if err != nil {
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "manifest") {
				t.Fatalf("error %q: want one line naming the manifest", msg)
			}
		} else {
			for _, tl := range tiles {
				if err := tl.check(); err != nil {
					t.Fatalf("tile %+v read though %v", tl, err)
				}
			}
			if err := WriteManifest(path, tiles); err != nil {
				t.Fatal(err)
			}
			back, err := ReadManifest(path)
			if err != nil || (len(tiles) > 0 && !reflect.DeepEqual(back, tiles)) {
				t.Fatalf("manifest written and read back: %v\n%+v\n%+v", err, back, tiles)
			}
		}
		jpath := filepath.Join(dir, "tiles.journal")
		if err := os.WriteFile(jpath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := openTileLog(jpath)
		if err != nil {
			return
		}
		defer l.close()
		for _, tl := range l.done {
			if err := tl.check(); err != nil {
				t.Fatalf("journal tile %+v kept though %v", tl, err)
			}
		}
	})
}
