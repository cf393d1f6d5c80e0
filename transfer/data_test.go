package transfer

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/tasks/taskstest"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func pngBytes(t *testing.T, seed uint64, dog bool) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := encodePNG(&b, SynthImage(rand.New(rand.NewPCG(seed, 1)), 40, dog)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestListTrainLayouts(t *testing.T) {
	kaggle := t.TempDir()
	for _, n := range []string{"dog.2.jpg", "cat.10.jpg", "cat.1.jpg", ".hidden"} {
		writeFile(t, filepath.Join(kaggle, n), []byte("x"))
	}
	generic := t.TempDir()
	for _, n := range []string{"b/x.png", "a/y.jpg", "c/z.jpg"} {
		writeFile(t, filepath.Join(generic, n), []byte("x"))
	}
	for _, tc := range []struct {
		dir     string
		classes []string
		labels  []int
	}{
		{kaggle, []string{"cat", "dog"}, []int{0, 0, 1}},
		{generic, []string{"a", "b", "c"}, []int{0, 1, 2}},
	} {
		ds, bad, err := ListTrain(tc.dir, false)
		if err != nil || len(bad) != 0 {
			t.Fatalf("%s: %v %v", tc.dir, err, bad)
		}
		var labels []int
		for _, it := range ds.Items {
			labels = append(labels, it.Label)
		}
		if !reflect.DeepEqual(ds.Classes, tc.classes) || !reflect.DeepEqual(labels, tc.labels) {
			t.Errorf("%s: classes %v labels %v, want %v %v", tc.dir, ds.Classes, labels, tc.classes, tc.labels)
		}
	}
	// A file whose name gives no class.
	writeFile(t, filepath.Join(kaggle, "readme.txt"), []byte("x"))
	if _, _, err := ListTrain(kaggle, false); err == nil || !strings.HasSuffix(err.Error(), "readme.txt: name is not <class>.<id>.<ext>") {
		t.Errorf("err %v", err)
	}
	if ds, bad, err := ListTrain(kaggle, true); err != nil || len(bad) != 1 || len(ds.Items) != 3 {
		t.Errorf("skip_bad: %v %v %d", err, bad, len(ds.Items))
	}
}

func TestListTestOrder(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"10.jpg", "9.jpg", "100.jpg", "1.jpg"} {
		writeFile(t, filepath.Join(dir, n), []byte("x"))
	}
	items, err := ListTest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	if want := []string{"1", "9", "10", "100"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
}

func TestSplitVal(t *testing.T) {
	v1, t1 := SplitVal(100, 0.2, 7)
	v2, _ := SplitVal(100, 0.2, 7)
	v3, _ := SplitVal(100, 0.2, 8)
	if len(v1) != 20 || len(t1) != 80 || !reflect.DeepEqual(v1, v2) || reflect.DeepEqual(v1, v3) {
		t.Errorf("split: %d/%d, same seed equal %v, other seed differs %v", len(v1), len(t1), reflect.DeepEqual(v1, v2), !reflect.DeepEqual(v1, v3))
	}
}

// TestBadImages: a corrupt file fails the features task with its name,
// and is skipped (and left out of training) with skip_bad=true.
func TestBadImages(t *testing.T) {
	data := t.TempDir()
	train := filepath.Join(data, "train")
	for i := range 3 {
		writeFile(t, filepath.Join(train, "cat."+string(rune('0'+i))+".png"), pngBytes(t, uint64(i), false))
		writeFile(t, filepath.Join(train, "dog."+string(rune('0'+i))+".png"), pngBytes(t, uint64(10+i), true))
	}
	writeFile(t, filepath.Join(train, "cat.9.jpg"), []byte("<html>404</html>"))
	cache := filepath.Join(t.TempDir(), "cache")
	for _, tc := range []struct {
		skip    string
		wantErr string
	}{
		{"false", "train/cat.9.jpg: not an image"},
		{"true", ""},
	} {
		raw := resolve(t, "preset=demo", "train_dir="+train, "skip_bad="+tc.skip, "feature_cache="+cache)
		env := taskstest.New(t, "features")
		err := featuresTask(context.Background(), env, raw)
		if tc.wantErr != "" {
			var bad *BadFileError
			if err == nil || err.Error() != tc.wantErr || !errors.As(err, &bad) {
				t.Errorf("skip_bad=%s: err %v, want %q", tc.skip, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("skip_bad=%s: %v", tc.skip, err)
		}
		fs, err := readFeatureSet(featurePath(env, "train"))
		if err != nil {
			t.Fatal(err)
		}
		if len(fs.Items) != 6 || len(fs.Bad) != 1 || fs.Bad[0] != "train/cat.9.jpg: not an image" {
			t.Errorf("items %d, bad %q", len(fs.Items), fs.Bad)
		}
	}
}

// TestFeatureCacheResume interrupts an extraction after its first batch
// (leaving a torn temporary file as a kill would), then checks that the
// rerun computes only the missing images and gives the same features as
// an uninterrupted run.
func TestFeatureCacheResume(t *testing.T) {
	dir := t.TempDir()
	if err := GenerateSynth(context.Background(), dir, 6, 0, 64, 3, nil); err != nil {
		t.Fatal(err)
	}
	ds, _, err := ListTrain(filepath.Join(dir, "train"), false)
	if err != nil {
		t.Fatal(err)
	}
	bb := fixtureBackbone(t)
	cache := filepath.Join(dir, "cache")
	ctx, cancel := context.WithCancel(context.Background())
	var marked []string
	e := &Extractor{Backbones: []*Backbone{bb}, CacheDir: cache, BatchSize: 4,
		Progress: func(string, int, int) { cancel() },
		MarkDone: func(keys ...string) error { marked = append(marked, keys...); return nil }}
	if _, _, err := e.Run(ctx, ds.Items); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err %v", err)
	}
	if e.Computed != 4 || len(marked) != 4 {
		t.Fatalf("interrupted run computed %d, marked %d, want 4", e.Computed, len(marked))
	}
	// What a kill in the middle of a write leaves behind.
	h, _ := fileHash(ds.Items[5].Path)
	writeFile(t, e.cachePath(bb, h)+".tmp123", []byte{1, 2})
	e2 := &Extractor{Backbones: []*Backbone{bb}, CacheDir: cache, BatchSize: 4}
	feats, _, err := e2.Run(context.Background(), ds.Items)
	if err != nil {
		t.Fatal(err)
	}
	if e2.Computed != len(ds.Items)-4 {
		t.Errorf("resumed run computed %d, want %d", e2.Computed, len(ds.Items)-4)
	}
	// A third run is all cache; fresh features of two images agree with it.
	e3 := &Extractor{Backbones: []*Backbone{bb}, CacheDir: cache, BatchSize: 4}
	again, _, err := e3.Run(context.Background(), ds.Items)
	if err != nil || e3.Computed != 0 {
		t.Fatalf("cached run: computed %d, err %v", e3.Computed, err)
	}
	fresh, _, err := (&Extractor{Backbones: []*Backbone{bb}, CacheDir: t.TempDir()}).Run(context.Background(), []Item{ds.Items[0], ds.Items[len(ds.Items)-1]})
	if err != nil {
		t.Fatal(err)
	}
	for k, i := range []int{0, len(ds.Items) - 1} {
		for j := range fresh[k] {
			if d := math.Abs(float64(fresh[k][j] - feats[i][j])); d > 1e-5 || again[i][j] != feats[i][j] {
				t.Fatalf("image %d feature %d: cached %v, fresh %v", i, j, feats[i][j], fresh[k][j])
			}
		}
	}
}

func TestSubmissionFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "submission.csv")
	items := []Item{{ID: "1"}, {ID: "2"}, {ID: "3"}, {ID: "4"}}
	probs := [][]float64{{0.9999, 0.0001}, {0.2, 0.8}, nil, {0, 1}}
	if err := WriteSubmission(path, []string{"cat", "dog"}, items, probs, 0.005); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	want := "id,label\n1,0.005000\n2,0.800000\n3,0.5\n4,0.995000\n"
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
	// More classes: the predicted class name.
	if err := WriteSubmission(path, []string{"a", "b", "c"}, items[:2], [][]float64{{0.1, 0.2, 0.7}, {0.5, 0.3, 0.2}}, 0.005); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if string(b) != "id,label\n1,c\n2,a\n" {
		t.Errorf("got %q", b)
	}
}

func TestScoreClipping(t *testing.T) {
	// A confident mistake: unclipped it costs -log(1e-15)≈34.5, clipped
	// -log(0.005)≈5.3.
	s := Score([][]float64{{1, 0}, {0.1, 0.9}}, []int{1, 1}, 0.005)
	if math.Abs(s.LogLoss-(34.539+0.10536)/2) > 1e-2 || math.Abs(s.LogLossClipped-(5.2983+0.10536)/2) > 1e-3 || s.Acc != 0.5 {
		t.Errorf("%+v", s)
	}
}

func TestParamsValidate(t *testing.T) {
	k, _ := resolveKind(t)
	for _, tc := range []struct {
		sets []string
		want string
	}{
		{nil, "parameter backbone: no backbone given: export one with PyTorch"},
		{[]string{"backbone=a.onnx,b.onnx", "backbone_preset=x,y,z"}, "parameter backbone_preset: give one preset, or one per backbone"},
		{[]string{"backbone=a.onnx", "backbone_preset=nope"}, `parameter backbone_preset: unknown preset "nope"`},
		{[]string{"backbone=a.onnx", "clip=0.7"}, "parameter clip"},
		{[]string{"backbone=a.onnx", "resize=stretch"}, "resize \"stretch\""},
		{[]string{"backbone=demo", "head_steps=0"}, "parameter head_steps: must be >= 1"},
		{[]string{"backbone=demo", "head_steps=many"}, `parameter head_steps: want int, got "many"`},
		{[]string{"backbone=demo", "head_batch=0"}, "parameter head_batch: must be >= 1"},
		{[]string{"backbone=demo", "weight_decay="}, "parameter weight_decay: give at least one value"},
		{[]string{"backbone=demo", "weight_decay=0.1,-1"}, "parameter weight_decay: -1 is not a finite number >= 0"},
		{[]string{"backbone=demo", "weight_decay=NaN"}, `parameter weight_decay: want a finite float, got "NaN"`},
		{[]string{"backbone=demo", "weight_decay=Inf"}, `parameter weight_decay: want a finite float, got "Inf"`},
		{[]string{"backbone=demo", "weight_decay=0.1,1e-1"}, "parameter weight_decay: 0.1 is given twice"},
		{[]string{"backbone=demo", "weight_decay=a"}, `parameter weight_decay: want list of float, got "a"`},
		{[]string{"backbone=demo", "weight_decay=" + strings.Repeat("1,", 16) + "2"}, "parameter weight_decay: 17 values, at most 16"},
		{[]string{"backbone=demo", "val_fraction=0"}, "parameter weight_decay: choosing among several values needs a validation split"},
	} {
		_, err := k.Resolve(nil, tc.sets)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want %q", tc.sets, err, tc.want)
		}
	}
	for _, ok := range [][]string{{"preset=demo"}, {"backbone=demo", "val_fraction=0", "weight_decay=0.01"},
		{"backbone=scratch", "val_fraction=0"}, {"backbone=demo", "head_steps=1", "weight_decay=0"}} {
		if _, err := k.Resolve(nil, ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}

func TestMissingBackboneFile(t *testing.T) {
	raw := resolve(t, "preset=demo", "backbone=/nonexistent/resnet50.onnx", "backbone_preset=resnet50-torchvision")
	env := taskstest.New(t, "generate")
	runTask(t, env, generateTask, resolve(t, "preset=demo", "synth_per_class=2", "synth_test=1"))
	err := featuresTask(context.Background(), env.Task("features"), raw)
	if err == nil || !strings.Contains(err.Error(), "torch.onnx.export") {
		t.Errorf("err %v, want the export hint", err)
	}
}

func TestDemoBackboneIsFixture(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixtureDir, "tinycnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, demoONNX) {
		t.Error("transfer/assets/tinycnn.onnx differs from testdata/transfer/tinycnn.onnx: rerun make_fixtures.py")
	}
}
