package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "labels.txt")
	for _, durable := range []bool{false, true} {
		if err := Write(path, durable, func(w io.Writer) error { _, err := io.WriteString(w, "1+2 3\n"); return err }); err != nil {
			t.Fatal(err)
		}
		if data, err := os.ReadFile(path); err != nil || string(data) != "1+2 3\n" {
			t.Fatalf("durable=%v: %q %v", durable, data, err)
		}
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	// A failed write leaves the old file and no temporary file.
	boom := errors.New("boom")
	if err := Write(path, false, func(w io.Writer) error { io.WriteString(w, "partial"); return boom }); !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	if err := WriteBytes(filepath.Join(dir, "no", "such", "dir"), nil); err == nil {
		t.Error("write into a missing directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if data, _ := os.ReadFile(path); len(ents) != 1 || string(data) != "1+2 3\n" {
		t.Errorf("after a failed write: %d entries, %q", len(ents), data)
	}
}
