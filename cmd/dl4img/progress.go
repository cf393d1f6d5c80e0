package main

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
)

// countBar is a progress bar over items (images, rows) on stderr, shown
// only when stderr is a terminal and not --quiet; its zero value does
// nothing.
type countBar struct {
	bar *progressbar.ProgressBar
	w   io.Writer
}

func newImageBar(c *cli.Context, total int, label string) countBar {
	return newCountBar(c, total, label, "images")
}

func newCountBar(c *cli.Context, total int, label, unit string) countBar {
	w, bars := logWriter(c)
	if !bars {
		return countBar{}
	}
	return countBar{w: w, bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(unit),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
	)}
}

// update has the progress-callback signature the generators take.
func (b countBar) update(done, _ int) {
	if b.bar != nil {
		b.bar.Set(done)
	}
}

func (b countBar) finish() {
	if b.bar != nil {
		b.bar.Finish()
		io.WriteString(b.w, "\n")
	}
}
