//go:build nodnnl

package engine

import (
	"time"

	"github.com/gomlx/compute"

	"github.com/dl4img/dl4img/engine/lower"
)

// Name is what a task records as the engine that ran it.
const Name = "go"

// Wrap returns the pure-Go backend b with the lowering of package lower,
// and any other backend as it is.
func Wrap(b compute.Backend) (compute.Backend, error) { return lower.Wrap(b), nil }

// IsGo reports whether b is the pure-Go backend, wrapped or not.
func IsGo(b compute.Backend) bool { return lower.IsGo(b) }

// Stats: see the oneDNN build; this build offloads nothing.
type Stats struct {
	Offloaded, Kept, Fallbacks map[string]int
	Segments, Regions          int
	Time                       map[string]time.Duration
}

// Ran counts nothing in this build.
func (s Stats) Ran(kind string) int { return 0 }

// StatsOf reports no engine in this build.
func StatsOf(compute.Backend) (Stats, bool) { return Stats{}, false }
