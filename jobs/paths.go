package jobs

import (
	"path/filepath"
	"strings"
)

// The store records paths relative to the workdir root (the folder every
// worker mounts, maybe at different places), so that a worker with its own
// --workdir finds another's files.

// Resolve turns a path recorded in the store into one on this machine:
// relative paths are under root. Absolute paths, which histories from
// before relative paths recorded, are used as they are (single-machine
// histories keep working; they are not rewritten).
func Resolve(root, stored string) string {
	if stored == "" || filepath.IsAbs(stored) {
		return stored
	}
	return filepath.Join(root, stored)
}

// relative turns a path on this machine into the form the store records:
// relative to root when it is inside it, else absolute.
func relative(root, path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return abs
	}
	return rel
}
