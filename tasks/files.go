package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dl4img/dl4img/internal/atomicfile"
)

// WriteFileAtomic writes path through a temporary file in the same
// directory, synced and renamed over path only when write succeeded, so a
// reader (or a resumed run) sees the old file or the new one, never half.
func WriteFileAtomic(path string, write func(w io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.Write(path, true, write)
}

// WriteJSONFile writes v to path as indented JSON, atomically (reports,
// indexes and predictions the tasks keep beside their outputs).
func WriteJSONFile(path string, v any) error {
	return WriteFileAtomic(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	})
}

// FileDigest returns a file's size and hex sha256.
func FileDigest(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
