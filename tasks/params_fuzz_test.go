package tasks

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/internal/fuzzguard"
)

// FuzzResolve feeds --config files and --set values to Resolve. Whatever
// they are, it returns parameters or an error, never panics; an error is
// one line; accepted parameters marshal to JSON (what a submission stores)
// and resolve back from it to the same values (what jobs retry does).
func FuzzResolve(f *testing.F) {
	f.Add([]byte(`{"epochs": 9, "lambda": 0.5, "fonts": ["a.ttf"]}`), "epochs=4")
	f.Add([]byte(`{"preset": "demo"}`), "depth=5")
	f.Add([]byte(``), "fonts=a.ttf,b.ttf")
	f.Add([]byte(`{"learning_rate": 1e308}`), "learning_rate=NaN")
	f.Add([]byte(`[]`), "augment=maybe")
	f.Add([]byte(`{"epochs": 1e400}`), "lambda=-Inf")
	f.Add([]byte(`{"val_fraction": 0.2}`), "seed=-9223372036854775808")
	f.Fuzz(func(t *testing.T, config []byte, set string) {
		defer fuzzguard.Deadline()()
		var sets []string
		if set != "" {
			sets = strings.Split(set, "\n")
		}
		p, err := testKind.Resolve(config, sets)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("accepted parameters do not marshal: %v (%+v)", err, p)
		}
		back, err := testKind.Resolve(raw, nil)
		if err != nil {
			t.Fatalf("stored parameters %s do not resolve again: %v", raw, err)
		}
		if !reflect.DeepEqual(back, p) {
			t.Fatalf("round trip changed the parameters:\n%+v\n%+v", p, back)
		}
	})
}
