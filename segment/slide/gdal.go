package slide

/*
#cgo pkg-config: gdal
#include <gdal.h>
*/
import "C"

import (
	"errors"
	"os"
	"strings"
	"sync"

	"github.com/airbusgeo/godal"
)

// DefaultCacheMax bounds GDAL's process-wide block cache. GDAL's own default
// is 5% of RAM, which made reading one slide cost ~860 MB RSS; tile-at-a-time
// reading needs only a few block rows.
const DefaultCacheMax = 64 << 20

var initOnce sync.Once

// initGDAL registers drivers and bounds the block cache once per process,
// unless the user chose a size through the GDAL_CACHEMAX environment variable.
func initGDAL() {
	initOnce.Do(func() {
		godal.RegisterAll()
		if os.Getenv("GDAL_CACHEMAX") == "" {
			SetCacheMax(DefaultCacheMax)
		}
	})
}

// SetCacheMax sets GDAL's block cache size in bytes. The cache is shared by
// every dataset in the process.
func SetCacheMax(bytes int64) {
	godal.RegisterAll()
	C.GDALSetCacheMax64(C.GIntBig(bytes))
}

// CacheMax reports GDAL's current block cache size in bytes.
func CacheMax() int64 { return int64(C.GDALGetCacheMax64()) }

// failuresOnly makes GDAL warnings (unknown TIFF tags in SVS files, missing
// georeferencing) non-fatal; godal treats them as errors by default.
func failuresOnly() interface {
	godal.OpenOption
	godal.DatasetIOOption
	godal.BandIOOption
	godal.DatasetCreateOption
	godal.BuildOverviewsOption
	godal.CloseOption
	godal.RasterizeIntoOption
} {
	return godal.ErrLogger(func(ec godal.ErrorCategory, code int, msg string) error {
		if ec >= godal.CE_Failure {
			return errors.New(msg)
		}
		return nil
	})
}

// lineError is a GDAL error on one line: GDAL reports a failure as several
// messages, which godal joins with newlines.
type lineError struct{ err error }

func (e lineError) Error() string {
	return strings.ReplaceAll(strings.TrimSpace(e.err.Error()), "\n", "; ")
}
func (e lineError) Unwrap() error { return e.err }

// oneLine makes a GDAL error one line.
func oneLine(err error) error {
	if err == nil || !strings.Contains(err.Error(), "\n") {
		return err
	}
	return lineError{err}
}
