//go:build !nodnnl

package engine

import (
	"fmt"
	"log"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"

	"github.com/dl4img/dl4img/engine/dnnl"
	"github.com/dl4img/dl4img/engine/lower"
)

// Name is what a task records as the engine that ran it.
const Name = "go+onednn"

// Wrap returns b with the engine if b is the pure-Go backend, and b itself
// otherwise (XLA compiles whole graphs its own way). Without oneDNN (a
// missing library at run time) it returns the lowering alone and an error
// saying which package to install.
func Wrap(b compute.Backend) (compute.Backend, error) {
	if b == nil || !lower.IsGo(b) {
		return b, nil
	}
	if e, ok := b.(*backend); ok {
		return e, nil
	}
	lib, err := dnnl.Open(runtime.GOMAXPROCS(0))
	if err != nil {
		return lower.Wrap(b), err
	}
	return &backend{Backend: b, lib: lib, stats: newStats()}, nil
}

// IsGo reports whether b is the pure-Go backend, with or without the engine.
func IsGo(b compute.Backend) bool { return lower.IsGo(b) }

// backend wraps the builders it makes and the buffers it hands out. GoMLX
// binds each tensor to the backend its buffer reports and refuses to feed
// it to another's executable, so buffers report the wrapper.
type backend struct {
	compute.Backend
	lib   *dnnl.Library
	stats *stats
	reuse reuseCounters
}

// Capabilities adds the ops the engine (and its lowering) provide to the
// Go backend's: the max pool's gradient and the batch-normalization ops.
func (b *backend) Capabilities() compute.Capabilities { return lower.Capabilities(b.Backend) }

func (b *backend) BufferFromFlatData(deviceNum compute.DeviceNum, flat any, shape shapes.Shape) (compute.Buffer, error) {
	buf, err := b.Backend.BufferFromFlatData(deviceNum, flat, shape)
	return lower.Owned(b, buf), err
}

func (b *backend) NewSharedBuffer(deviceNum compute.DeviceNum, shape shapes.Shape) (compute.Buffer, any, error) {
	buf, flat, err := b.Backend.NewSharedBuffer(deviceNum, shape)
	return lower.Owned(b, buf), flat, err
}

// Stats counts, per backend, what the engine did with the functions it
// compiled: the ops it ran on oneDNN by kind, the convolution and pooling
// ops it left on the Go backend (and why), and the functions it compiled
// whole on the fallback path (and why).
type Stats struct {
	Offloaded map[string]int // "conv forward (jit:avx2)", "pool max backward (...)", ...
	Kept      map[string]int // "op: reason" -> count
	Fallbacks map[string]int // reason -> count
	Segments  int            // Go segments compiled
	// Regions counts the values passed from one primitive to others in
	// oneDNN's own (blocked) layout, with no reorder between them.
	Regions int
	// Time is the time spent running each kind of step: the keys of
	// Offloaded, and "Go segments".
	Time map[string]time.Duration
}

// Ran counts the ops of a kind ("conv forward") run on oneDNN, whatever
// was fused into them ("+relu") and whatever implementation oneDNN chose
// (in brackets).
func (s Stats) Ran(kind string) int {
	n := 0
	for k, v := range s.Offloaded {
		if strings.HasPrefix(k, kind+" (") || strings.HasPrefix(k, kind+"+") {
			n += v
		}
	}
	return n
}

// String lists the counters on one line.
func (s Stats) String() string {
	var parts []string
	for _, m := range []struct {
		name string
		m    map[string]int
	}{{"oneDNN", s.Offloaded}, {"kept on Go", s.Kept}, {"whole on Go", s.Fallbacks}} {
		for _, k := range slices.Sorted(maps.Keys(m.m)) {
			parts = append(parts, fmt.Sprintf("%s: %s ×%d", m.name, k, m.m[k]))
		}
	}
	parts = append(parts, fmt.Sprintf("%d Go segments, %d values kept in oneDNN's layout", s.Segments, s.Regions))
	return strings.Join(parts, "; ")
}

// stats is a backend's Stats behind a lock. The first time a reason to keep
// an op on Go or to compile a function whole appears, it is logged.
type stats struct {
	mu sync.Mutex
	s  Stats
}

func newStats() *stats {
	return &stats{s: Stats{Offloaded: map[string]int{}, Kept: map[string]int{}, Fallbacks: map[string]int{},
		Time: map[string]time.Duration{}}}
}

func (st *stats) update(f func(s *Stats)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	f(&st.s)
}

func (st *stats) note(m func(s *Stats) map[string]int, key string) {
	st.update(func(s *Stats) {
		if m(s)[key] == 0 {
			log.Printf("engine: %s", key)
		}
		m(s)[key]++
	})
}

// StatsOf returns a copy of the engine's counters for backend b (false if
// b is not an engine backend).
func StatsOf(b compute.Backend) (Stats, bool) {
	e, ok := b.(*backend)
	if !ok {
		return Stats{}, false
	}
	e.stats.mu.Lock()
	defer e.stats.mu.Unlock()
	s := e.stats.s
	return Stats{Offloaded: maps.Clone(s.Offloaded), Kept: maps.Clone(s.Kept), Fallbacks: maps.Clone(s.Fallbacks),
		Segments: s.Segments, Regions: s.Regions, Time: maps.Clone(s.Time)}, true
}
