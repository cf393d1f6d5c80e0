package lines

import (
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dl4img/dl4img/internal/imagefile"
	"github.com/dl4img/dl4img/ocr/formula/boxes"
	"github.com/dl4img/dl4img/ocr/formula/synth"
)

func TestExtractErrors(t *testing.T) {
	e := NewExtractor()
	if _, _, err := e.Extract(image.NewGray(image.Rect(0, 0, 4, 4)), nil); err == nil {
		t.Error("tiny image accepted")
	}
	blank := image.NewGray(image.Rect(0, 0, 300, 200))
	for i := range blank.Pix {
		blank.Pix[i] = 240
	}
	if _, _, err := e.Extract(blank, nil); !errors.Is(err, ErrNoLines) {
		t.Errorf("blank image: %v, want ErrNoLines", err)
	}
	// Narrower than the vector median's 32 columns: the scalar median
	// takes over (it once left no median at all, a nil image).
	if _, _, err := e.Extract(blank.SubImage(image.Rect(0, 0, 20, 200)), nil); !errors.Is(err, ErrNoLines) {
		t.Errorf("narrow blank image: %v, want ErrNoLines", err)
	}
	bad := NewExtractor()
	bad.MedianSize = 4
	if _, _, err := bad.Extract(blank, nil); err == nil {
		t.Error("even median size accepted")
	}
}

func TestExtractDebugStages(t *testing.T) {
	g := testGenerator(t)
	s, err := g.Sample(1)
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	strip, boxes, err := NewExtractor().Extract(s.Image, func(stage string, img image.Image) {
		stages = append(stages, stage)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(stages) || len(stages) < 10 {
		t.Errorf("stages %v", stages)
	}
	if strip.Rect.Dy() != 81 || strip.Rect.Dx() > 900 || len(boxes) != len(s.Boxes) {
		t.Errorf("strip %v, %d boxes", strip.Rect, len(boxes))
	}
}

func TestExtractFilesResumes(t *testing.T) {
	testGenerator(t)
	data := t.TempDir()
	if err := synth.GenerateDataset(context.Background(), synth.Config{Seed: 3, MaxHeight: 600, MaxWidth: 1500}, data, 3, nil); err != nil {
		t.Fatal(err)
	}
	paths, err := ExpandInputs([]string{data})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 || filepath.Base(paths[2]) != "2.png" {
		t.Fatalf("inputs %v", paths)
	}
	out, dbg := t.TempDir(), t.TempDir()
	calls := 0
	if err := ExtractFiles(context.Background(), paths, out, dbg, func(done, total int) { calls++ }); err != nil {
		t.Fatal(err)
	}
	if calls != 3 {
		t.Errorf("%d progress calls", calls)
	}
	gt, _ := boxes.Read(filepath.Join(data, "boxes.csv"))
	found, err := boxes.Read(filepath.Join(out, "boxes.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != len(gt) {
		t.Fatalf("%d boxes found, %d in ground truth", len(found), len(gt))
	}
	for i := range gt {
		if found[i].File != gt[i].File || found[i].Line != gt[i].Line || iou(found[i].Box, gt[i].Box) < 0.5 {
			t.Errorf("box %d: %+v, ground truth %+v", i, found[i], gt[i])
		}
	}
	f, err := os.Open(filepath.Join(out, "1.png"))
	if err != nil {
		t.Fatal(err)
	}
	strip, err := png.Decode(f)
	f.Close()
	if err != nil || strip.Bounds().Dy() != 81 {
		t.Fatalf("strip: %v %v", err, strip.Bounds())
	}
	if _, err := os.Stat(filepath.Join(dbg, "0", "05-flattened.png")); err != nil {
		t.Errorf("debug stage missing: %v", err)
	}

	// Resume: a removed strip is redone, the others are left alone.
	keep := filepath.Join(out, "0.png")
	old := time.Unix(1000, 0)
	os.Chtimes(keep, old, old)
	os.Remove(filepath.Join(out, "2.png"))
	if err := ExtractFiles(context.Background(), paths, out, "", nil); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(keep); err != nil || !st.ModTime().Equal(old) {
		t.Errorf("finished image was redone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "2.png")); err != nil {
		t.Errorf("removed strip not redone: %v", err)
	}
	again, _ := boxes.Read(filepath.Join(out, "boxes.csv"))
	if !slices.Equal(again, found) {
		t.Error("boxes.csv changed on resume")
	}

	// An image without lines is reported, the rest still written.
	blank := image.NewGray(image.Rect(0, 0, 300, 200))
	for i := range blank.Pix {
		blank.Pix[i] = 240
	}
	bp := filepath.Join(t.TempDir(), "blank.png")
	if err := imagefile.WritePNG(bp, blank, true); err != nil {
		t.Fatal(err)
	}
	out2 := t.TempDir()
	err = ExtractFiles(context.Background(), append([]string{bp}, paths[:1]...), out2, "", nil)
	if !errors.Is(err, ErrNoLines) {
		t.Errorf("blank image: %v, want ErrNoLines", err)
	}
	if _, err := os.Stat(filepath.Join(out2, "0.png")); err != nil {
		t.Errorf("good image not written next to a bad one: %v", err)
	}
	if err := ExtractFiles(context.Background(), []string{paths[0], paths[0] + "/../" + filepath.Base(paths[0])}, t.TempDir(), "", nil); err == nil {
		t.Error("two inputs with one output name accepted")
	}
}

func TestSortNatural(t *testing.T) {
	names := []string{"10.png", "b.png", "2.png", "a.jpg", "1.png"}
	sortNatural(names)
	if want := []string{"1.png", "2.png", "10.png", "a.jpg", "b.png"}; !slices.Equal(names, want) {
		t.Errorf("sorted %v", names)
	}
}
