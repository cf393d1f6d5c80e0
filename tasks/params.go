package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Common holds the parameters every kind shares, so users learn them once.
// Kinds embed it and set their own defaults.
type Common struct {
	TrainDir      string  `json:"train_dir" doc:"training dataset folder (default: generated data)"`
	TestDir       string  `json:"test_dir" doc:"test dataset folder to predict into the submission"`
	Out           string  `json:"out" doc:"where the submission goes (default: the job's workdir)"`
	Epochs        int     `json:"epochs" doc:"training epochs"`
	StepsPerEpoch int     `json:"steps_per_epoch" doc:"training steps per epoch"`
	BatchSize     int     `json:"batch_size" doc:"examples per training step"`
	LearningRate  float64 `json:"learning_rate" doc:"optimizer learning rate"`
	ValFraction   float64 `json:"val_fraction" doc:"fraction of the data held out for validation"`
	Seed          int64   `json:"seed" doc:"random seed: same seed, same data order, same result"`
	Preset        string  `json:"preset" doc:"named bundle of defaults (e.g. demo)"`
}

// Validate checks the shared parameters.
func (c *Common) Validate() error {
	switch {
	case c.Epochs < 0:
		return errors.New("parameter epochs: must be >= 0")
	case c.StepsPerEpoch < 0:
		return errors.New("parameter steps_per_epoch: must be >= 0")
	case c.BatchSize < 0:
		return errors.New("parameter batch_size: must be >= 0")
	case c.LearningRate < 0:
		return errors.New("parameter learning_rate: must be >= 0")
	case c.ValFraction < 0 || c.ValFraction >= 1:
		return errors.New("parameter val_fraction: must be in [0, 1)")
	}
	return nil
}

// Param describes one parameter of a kind, for `dl4img kinds`.
type Param struct {
	Name    string
	Type    string
	Default any
	Doc     string
}

type field struct {
	index []int
	typ   reflect.Type
	doc   string
}

// fields maps json names to struct fields, through embedded structs.
func fields(t reflect.Type) map[string]field {
	out := map[string]field{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			idx := append(append([]int{}, prefix...), i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			out[name] = field{index: idx, typ: f.Type, doc: f.Tag.Get("doc")}
		}
	}
	walk(t, nil)
	return out
}

// Params lists a kind's parameters with their defaults.
func (k JobKind) Params() []Param {
	v := reflect.ValueOf(k.NewParams()).Elem()
	fs := fields(v.Type())
	var out []Param
	for name, f := range fs {
		out = append(out, Param{Name: name, Type: typeName(f.typ), Default: v.FieldByIndex(f.index).Interface(), Doc: f.doc})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "int"
	case reflect.Float64, reflect.Float32:
		return "float"
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	}
	return t.Kind().String()
}

// Resolve builds a kind's parameters: defaults, then the preset (named in
// config or sets), then config (a JSON object), then sets ("key=value").
// Unknown names and ill-typed values are errors naming the parameter.
func (k JobKind) Resolve(config []byte, sets []string) (any, error) {
	p := k.NewParams()
	fs := fields(reflect.TypeOf(p).Elem())
	var cfg map[string]json.RawMessage
	if len(bytes.TrimSpace(config)) > 0 {
		if err := json.Unmarshal(config, &cfg); err != nil {
			return nil, fmt.Errorf("config is not a JSON object: %w", err)
		}
	}
	kv := make([][2]string, 0, len(sets))
	for _, s := range sets {
		key, val, ok := strings.Cut(s, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("--set %q: want key=value", s)
		}
		if _, known := fs[key]; !known {
			return nil, unknownParam(k, key, fs)
		}
		kv = append(kv, [2]string{key, val})
	}
	for key := range cfg {
		if _, known := fs[key]; !known {
			return nil, unknownParam(k, key, fs)
		}
	}

	preset := ""
	if raw, ok := cfg["preset"]; ok {
		if err := json.Unmarshal(raw, &preset); err != nil {
			return nil, fmt.Errorf("parameter preset: want a string: %w", err)
		}
	}
	for _, e := range kv {
		if e[0] == "preset" {
			preset = e[1]
		}
	}
	if preset != "" {
		values, ok := k.Presets[preset]
		if !ok {
			var names []string
			for n := range k.Presets {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("parameter preset: kind %s has no preset %q (known: %v)", k.Name, preset, names)
		}
		raw, err := json.Marshal(values)
		if err != nil {
			return nil, err
		}
		if err := decodeStrict(raw, p); err != nil {
			return nil, fmt.Errorf("preset %s of kind %s: %w", preset, k.Name, err)
		}
	}
	for key, raw := range cfg {
		if err := setJSON(p, fs[key], key, raw); err != nil {
			return nil, err
		}
	}
	for _, e := range kv {
		if err := setString(p, fs[e[0]], e[0], e[1]); err != nil {
			return nil, err
		}
	}
	if v, ok := p.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func unknownParam(k JobKind, key string, fs map[string]field) error {
	names := make([]string, 0, len(fs))
	for n := range fs {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Errorf("unknown parameter %q for kind %s (known: %s)", key, k.Name, strings.Join(names, ", "))
}

func decodeStrict(raw []byte, p any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(p)
}

func setJSON(p any, f field, key string, raw json.RawMessage) error {
	ptr := reflect.New(f.typ)
	if err := json.Unmarshal(raw, ptr.Interface()); err != nil {
		return fmt.Errorf("parameter %s: want %s, got %s", key, typeName(f.typ), raw)
	}
	reflect.ValueOf(p).Elem().FieldByIndex(f.index).Set(ptr.Elem())
	return nil
}

// wantError is a value parseValue refuses though it parses.
type wantError string

func (e wantError) Error() string { return string(e) }

func setString(p any, f field, key, val string) error {
	v, err := parseValue(f.typ, val)
	if err != nil {
		want := typeName(f.typ)
		var we wantError
		if errors.As(err, &we) {
			want = string(we)
		}
		return fmt.Errorf("parameter %s: want %s, got %q", key, want, val)
	}
	reflect.ValueOf(p).Elem().FieldByIndex(f.index).Set(v)
	return nil
}

func parseValue(t reflect.Type, s string) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	s = strings.TrimSpace(s)
	switch t.Kind() {
	case reflect.String:
		if !utf8.ValidString(s) {
			// JSON would store U+FFFD instead: a retry would see another value.
			return v, wantError("UTF-8 text")
		}
		v.SetString(s)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(s, 10, t.Bits())
		if err != nil {
			return v, err
		}
		v.SetInt(n)
	case reflect.Float64, reflect.Float32:
		x, err := strconv.ParseFloat(s, t.Bits())
		if err != nil {
			return v, err
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			// JSON, where parameters are stored, has no NaN or Inf.
			return v, wantError("a finite float")
		}
		v.SetFloat(x)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return v, err
		}
		v.SetBool(b)
	case reflect.Slice:
		parts := strings.Split(s, ",")
		if s == "" {
			parts = nil
		}
		sl := reflect.MakeSlice(t, 0, len(parts))
		for _, part := range parts {
			e, err := parseValue(t.Elem(), part)
			if err != nil {
				return v, err
			}
			sl = reflect.Append(sl, e)
		}
		v.Set(sl)
	default:
		return v, fmt.Errorf("unsupported type %s", t)
	}
	return v, nil
}

// Decode reads a task's JSON parameters into p (a pointer to the params
// struct of its kind).
func Decode(raw json.RawMessage, p any) error {
	if err := json.Unmarshal(raw, p); err != nil {
		return fmt.Errorf("task parameters: %w", err)
	}
	return nil
}
