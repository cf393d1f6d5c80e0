package main

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
)

// imageBar is a progress bar over images on stderr, shown only when stderr
// is a terminal and not --quiet; its zero value does nothing.
type imageBar struct {
	bar *progressbar.ProgressBar
	w   io.Writer
}

func newImageBar(c *cli.Context, total int, label string) imageBar {
	w, bars := logWriter(c)
	if !bars {
		return imageBar{}
	}
	return imageBar{w: w, bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("images"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
	)}
}

// update has the progress-callback signature the generators take.
func (b imageBar) update(done, _ int) {
	if b.bar != nil {
		b.bar.Set(done)
	}
}

func (b imageBar) finish() {
	if b.bar != nil {
		b.bar.Finish()
		io.WriteString(b.w, "\n")
	}
}
