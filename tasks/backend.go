package tasks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // registers "go"
	"github.com/gomlx/go-xla/compute/xla"

	"github.com/dl4img/dl4img/engine"
)

func init() {
	// dl4img never downloads anything at run time: plugins are found on
	// disk (see FindCUDAPlugin) or the user names one by absolute path.
	xla.EnableAutoInstall(false)
}

// ErrNoCUDA is returned when xla:cuda is asked for and no plugin is found.
var ErrNoCUDA = errors.New("no XLA CUDA PJRT plugin found (set PJRT_PLUGIN_LIBRARY_PATH or install jax's CUDA plugin), use --backend go")

// BackendSpec is what --backend accepts.
const BackendSpec = "auto|go|xla:cuda|xla:/abs/path/plugin.so"

// NewBackend creates the backend named by spec and returns it with the
// name recorded on each task: the XLA configuration actually used, or the
// engine's name for the pure-Go backend ("go+onednn"; "go" in a -tags
// nodnnl build), which comes wrapped by package engine so that every
// convolution and pool on it (nn's, an ONNX model's, autodiff's) runs on
// oneDNN.
func NewBackend(spec string) (compute.Backend, string, error) {
	config, err := ResolveBackend(spec)
	if err != nil {
		return nil, "", err
	}
	b, err := newWithConfig(config)
	if err != nil {
		return nil, "", fmt.Errorf("backend %s: %w", config, err)
	}
	if !engine.IsGo(b) {
		return b, config, nil
	}
	w, err := engine.Wrap(b)
	if err != nil {
		return nil, "", err
	}
	return w, engine.Name, nil
}

// newWithConfig turns compute's panics (unknown backend) into errors.
func newWithConfig(config string) (b compute.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return compute.NewWithConfig(config)
}

// goBackend runs one op at a time: with the pinned backend, two large
// matmuls started concurrently can each wait for the other's worker slots
// forever (seen with the captcha CNN's four dense heads). Each matmul still
// uses every core.
const goBackend = "go:ops_sequential"

// ResolveBackend maps a --backend value to a GoMLX backend configuration.
func ResolveBackend(spec string) (string, error) {
	switch {
	case spec == "" || spec == "auto":
		if p := FindCUDAPlugin(); p != "" {
			return "xla:" + p, nil
		}
		return goBackend, nil
	case spec == "go":
		return goBackend, nil
	case spec == "xla:cuda":
		p := FindCUDAPlugin()
		if p == "" {
			return "", ErrNoCUDA
		}
		return "xla:" + p, nil
	case strings.HasPrefix(spec, "xla:"):
		path, opts, _ := strings.Cut(strings.TrimPrefix(spec, "xla:"), ",")
		if !filepath.IsAbs(path) {
			return "", fmt.Errorf("backend %q: give the plugin by absolute path (xla:/abs/path/plugin.so) or use xla:cuda", spec)
		}
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("backend %q: %w", spec, err)
		}
		if opts != "" {
			path += "," + opts
		}
		return "xla:" + path, nil
	}
	return "", fmt.Errorf("unknown backend %q (want %s)", spec, BackendSpec)
}

// FindCUDAPlugin looks for a CUDA PJRT plugin: in $PJRT_PLUGIN_LIBRARY_PATH
// (files or directories), then in jax's plugin package (jax_plugins/xla_cuda*)
// under the site-packages of $VIRTUAL_ENV, of the environment whose python3
// is on $PATH, and of the usual system locations. It returns "" when there is
// none.
func FindCUDAPlugin() string {
	var cands []string
	for _, p := range filepath.SplitList(os.Getenv("PJRT_PLUGIN_LIBRARY_PATH")) {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() && strings.Contains(filepath.Base(p), "cuda") {
			cands = append(cands, p)
			continue
		}
		for _, pat := range []string{"pjrt_c_api_cuda*.so", "*cuda*plugin*.so"} {
			m, _ := filepath.Glob(filepath.Join(p, pat))
			cands = append(cands, m...)
		}
	}
	var sites []string
	home, _ := os.UserHomeDir()
	for _, root := range []string{"/usr/lib", "/usr/local/lib", "/opt/conda/lib", filepath.Join(home, ".local/lib")} {
		m, _ := filepath.Glob(filepath.Join(root, "python3*", "*-packages"))
		sites = append(sites, m...)
	}
	sort.Strings(sites)
	// A virtual environment (JAX is usually pip-installed into one) comes
	// first: the active one, then the one whose python3 is on PATH.
	var venvs []string
	if venv := os.Getenv("VIRTUAL_ENV"); venv != "" {
		venvs = append(venvs, venv)
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if st, err := os.Stat(filepath.Join(dir, "python3")); err == nil && !st.IsDir() && filepath.IsAbs(dir) {
			venvs = append(venvs, filepath.Dir(dir))
		}
	}
	for i := len(venvs) - 1; i >= 0; i-- {
		m, _ := filepath.Glob(filepath.Join(venvs[i], "lib", "python3*", "site-packages"))
		sites = append(m, sites...)
	}
	for _, s := range sites {
		m, _ := filepath.Glob(filepath.Join(s, "jax_plugins", "xla_cuda*", "xla_cuda_plugin.so"))
		cands = append(cands, m...)
	}
	for _, c := range cands {
		if abs, err := filepath.Abs(c); err == nil {
			if _, err := os.Stat(abs); err == nil {
				return abs
			}
		}
	}
	return ""
}
