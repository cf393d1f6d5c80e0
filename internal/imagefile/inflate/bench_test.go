package inflate

import (
	"bytes"
	stdzlib "compress/zlib"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	kpzlib "github.com/klauspost/compress/zlib"
)

// benchStreams loads the IDAT streams of up to 10 PNGs of FORMULA_DIR (a
// dataset written by `dl4img gen formula`) and their inflated sizes.
func benchStreams(b *testing.B) (streams [][]byte, sizes []int) {
	dir := os.Getenv("FORMULA_DIR")
	if dir == "" {
		b.Skip("set FORMULA_DIR to a dataset written by `dl4img gen formula`")
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.png"))
	if err != nil || len(paths) == 0 {
		b.Fatalf("no PNGs in %s: %v", dir, err)
	}
	if len(paths) > 10 {
		paths = paths[:10]
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		z := idatStream(b, data)
		raw, err := stdInflate(z)
		if err != nil {
			b.Fatalf("%s: %v", p, err)
		}
		streams = append(streams, z)
		sizes = append(sizes, len(raw))
	}
	return streams, sizes
}

// BenchmarkZlib inflates PNG IDAT streams with this package, klauspost's
// zlib and compress/zlib; MB/s counts output bytes.
func BenchmarkZlib(b *testing.B) {
	streams, sizes := benchStreams(b)
	total := 0
	for _, n := range sizes {
		total += n
	}
	dst := make([]byte, max(0, slicesMax(sizes)))
	run := func(b *testing.B, inflate func(dst, z []byte) error) {
		b.SetBytes(int64(total / len(sizes)))
		cpu0 := cpuTime(b)
		n := 0
		for i := 0; b.Loop(); i++ {
			k := i % len(streams)
			if err := inflate(dst[:sizes[k]], streams[k]); err != nil {
				b.Fatal(err)
			}
			n++
		}
		// CPU time, not wall time: the benchmark machine is shared.
		cpu := (cpuTime(b) - cpu0).Seconds()
		b.ReportMetric(cpu*1e3/float64(n), "cpu-ms/op")
		b.ReportMetric(float64(total)/float64(len(sizes))*float64(n)/cpu/1e6, "cpu-MB/s")
	}
	b.Run("inflate", func(b *testing.B) {
		run(b, func(dst, z []byte) error {
			_, err := Zlib(dst, z)
			return err
		})
	})
	var br bytes.Reader
	b.Run("klauspost", func(b *testing.B) {
		var zr io.ReadCloser
		run(b, func(dst, z []byte) (err error) {
			br.Reset(z)
			if zr == nil {
				zr, err = kpzlib.NewReader(&br)
			} else {
				err = zr.(kpzlib.Resetter).Reset(&br, nil)
			}
			if err != nil {
				return err
			}
			_, err = io.ReadFull(zr, dst)
			return err
		})
	})
	b.Run("stdlib", func(b *testing.B) {
		var zr io.ReadCloser
		run(b, func(dst, z []byte) (err error) {
			br.Reset(z)
			if zr == nil {
				zr, err = stdzlib.NewReader(&br)
			} else {
				err = zr.(stdzlib.Resetter).Reset(&br, nil)
			}
			if err != nil {
				return err
			}
			_, err = io.ReadFull(zr, dst)
			return err
		})
	})
}

// cpuTime is the process's user+system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func slicesMax(s []int) int {
	m := 0
	for _, v := range s {
		m = max(m, v)
	}
	return m
}
