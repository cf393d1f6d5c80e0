package tasks

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/engine"
)

type testParams struct {
	Common
	Depth  int      `json:"depth" doc:"layers"`
	Fonts  []string `json:"fonts" doc:"font files"`
	Augm   bool     `json:"augment"`
	Lambda float64  `json:"lambda"`
}

func (p *testParams) Validate() error {
	if err := p.Common.Validate(); err != nil {
		return err
	}
	if p.Depth > 10 {
		return errors.New("parameter depth: must be <= 10")
	}
	return nil
}

var testKind = JobKind{
	Name:      "t",
	NewParams: func() any { return &testParams{Common: Common{Epochs: 3, BatchSize: 8, Seed: 1}, Depth: 2} },
	Presets:   map[string]map[string]any{"demo": {"epochs": 1, "depth": 4}},
}

func TestResolve(t *testing.T) {
	cases := []struct {
		name    string
		config  string
		sets    []string
		want    func(p *testParams) bool
		wantErr string
	}{
		{name: "defaults", want: func(p *testParams) bool { return p.Epochs == 3 && p.Depth == 2 }},
		{name: "set typed values", sets: []string{"epochs=7", "learning_rate=1e-4", "augment=true", "fonts=a.ttf,b.ttf", "train_dir=/d"},
			want: func(p *testParams) bool {
				return p.Epochs == 7 && p.LearningRate == 1e-4 && p.Augm && len(p.Fonts) == 2 && p.Fonts[1] == "b.ttf" && p.TrainDir == "/d"
			}},
		{name: "preset then user values", sets: []string{"preset=demo", "depth=5"},
			want: func(p *testParams) bool { return p.Epochs == 1 && p.Depth == 5 && p.Preset == "demo" }},
		{name: "config then sets", config: `{"epochs": 9, "lambda": 0.5}`, sets: []string{"epochs=4"},
			want: func(p *testParams) bool { return p.Epochs == 4 && p.Lambda == 0.5 }},
		{name: "preset from config", config: `{"preset": "demo"}`, want: func(p *testParams) bool { return p.Depth == 4 }},
		{name: "unknown set", sets: []string{"epoch=3"}, wantErr: `unknown parameter "epoch" for kind t`},
		{name: "unknown config key", config: `{"bogus": 1}`, wantErr: `unknown parameter "bogus"`},
		{name: "ill-typed set", sets: []string{"epochs=three"}, wantErr: `parameter epochs: want int, got "three"`},
		{name: "ill-typed config", config: `{"epochs": "x"}`, wantErr: `parameter epochs: want int`},
		{name: "bool", sets: []string{"augment=maybe"}, wantErr: "parameter augment: want bool"},
		{name: "no equals", sets: []string{"epochs"}, wantErr: `--set "epochs": want key=value`},
		{name: "config not JSON", config: `epochs: 3`, wantErr: "config is not a JSON object"},
		{name: "NaN", sets: []string{"learning_rate=NaN"}, wantErr: `parameter learning_rate: want a finite float, got "NaN"`},
		{name: "Inf", sets: []string{"lambda=-inf"}, wantErr: `parameter lambda: want a finite float, got "-inf"`},
		{name: "not UTF-8", sets: []string{"train_dir=/d/\xff"}, wantErr: `parameter train_dir: want UTF-8 text`},
		{name: "config array", config: `[1,2]`, wantErr: "config is not a JSON object"},
		{name: "unknown preset", sets: []string{"preset=huge"}, wantErr: `no preset "huge" (known: [demo])`},
		{name: "validation", sets: []string{"depth=11"}, wantErr: "parameter depth: must be <= 10"},
		{name: "common validation", sets: []string{"val_fraction=1.5"}, wantErr: "parameter val_fraction"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := testKind.Resolve([]byte(c.config), c.sets)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.want(p.(*testParams)) {
				t.Fatalf("got %+v", p)
			}
		})
	}
}

func TestParamsDocs(t *testing.T) {
	ps := testKind.Params()
	byName := map[string]Param{}
	for _, p := range ps {
		byName[p.Name] = p
	}
	for _, n := range []string{"train_dir", "test_dir", "out", "epochs", "steps_per_epoch", "batch_size", "learning_rate", "val_fraction", "seed", "preset", "depth"} {
		if _, ok := byName[n]; !ok {
			t.Errorf("parameter %s missing from docs", n)
		}
	}
	if p := byName["depth"]; p.Default != 2 || p.Doc != "layers" || p.Type != "int" {
		t.Errorf("depth: %+v", p)
	}
}

func TestResolveBackend(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "xla_cuda_plugin.so")
	os.WriteFile(plugin, []byte("not really"), 0o644)
	t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", "")
	t.Setenv("VIRTUAL_ENV", "")
	noCUDA := FindCUDAPlugin() == ""
	cases := []struct {
		spec, want, wantErr string
	}{
		{spec: "go", want: goBackend},
		{spec: "xla:" + plugin, want: "xla:" + plugin},
		{spec: "xla:relative.so", wantErr: "absolute path"},
		{spec: "xla:/no/such/plugin.so", wantErr: "no such file"},
		{spec: "tpu", wantErr: `unknown backend "tpu"`},
	}
	if noCUDA {
		cases = append(cases, struct{ spec, want, wantErr string }{spec: "auto", want: goBackend},
			struct{ spec, want, wantErr string }{spec: "xla:cuda", wantErr: "no XLA CUDA PJRT plugin"})
	}
	for _, c := range cases {
		got, err := ResolveBackend(c.spec)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: error %v, want %q", c.spec, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.spec, got, err, c.want)
		}
	}
	// A plugin named by PJRT_PLUGIN_LIBRARY_PATH is what auto picks.
	t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", dir)
	if got, _ := ResolveBackend("auto"); got != "xla:"+plugin {
		t.Errorf("auto with PJRT_PLUGIN_LIBRARY_PATH: %q", got)
	}
	if _, name, err := NewBackend("go"); err != nil || name != engine.Name {
		t.Errorf("NewBackend(go): %q %v", name, err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "out.txt")
	if err := WriteFileAtomic(path, func(w io.Writer) error { _, err := io.WriteString(w, "v1"); return err }); err != nil {
		t.Fatal(err)
	}
	// A failing writer leaves the old content and no temp files.
	err := WriteFileAtomic(path, func(w io.Writer) error {
		io.WriteString(w, "half")
		return errors.New("boom")
	})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "v1" {
		t.Fatalf("content %q", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("leftovers: %v", entries)
	}
	n, sum, err := FileDigest(path)
	if err != nil || n != 2 || sum != "3bfc269594ef649228e9a74bab00f042efc91d5acc6fbee31a382e80d42388fe" {
		t.Fatalf("digest %d %s %v", n, sum, err)
	}
}
