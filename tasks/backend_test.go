package tasks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A JAX CUDA install in a virtual environment whose python3 is on PATH (the
// GPU machine's layout: /opt/torch/.venv/bin/python3) is found without any
// environment variable, and a file that is not a real plugin fails with an
// error naming it instead of a panic.
func TestFindCUDAPluginInVenv(t *testing.T) {
	venv := filepath.Join(t.TempDir(), ".venv")
	plugin := filepath.Join(venv, "lib", "python3.12", "site-packages", "jax_plugins", "xla_cuda13", "xla_cuda_plugin.so")
	for path, body := range map[string]string{
		filepath.Join(venv, "bin", "python3"): "#!/bin/sh\n",
		plugin:                                "not an ELF file",
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", "")
	t.Setenv("VIRTUAL_ENV", "")
	t.Setenv("PATH", filepath.Join(venv, "bin")+string(filepath.ListSeparator)+os.Getenv("PATH"))
	if got := FindCUDAPlugin(); got != plugin {
		t.Fatalf("FindCUDAPlugin() = %q, want %q", got, plugin)
	}
	for _, spec := range []string{"auto", "xla:cuda"} {
		if got, err := ResolveBackend(spec); err != nil || got != "xla:"+plugin {
			t.Errorf("ResolveBackend(%s) = %q, %v", spec, got, err)
		}
	}
	// Options after the path are kept for GoMLX (e.g. tf32=false).
	if got, err := ResolveBackend("xla:" + plugin + ",tf32=false"); err != nil || got != "xla:"+plugin+",tf32=false" {
		t.Errorf("with options: %q, %v", got, err)
	}
	_, _, err := NewBackend("xla:" + plugin)
	if err == nil || !strings.Contains(err.Error(), plugin) || strings.Contains(err.Error(), "\n") {
		t.Errorf("fake plugin: error %v, want one line naming %s", err, plugin)
	}
}
