package serve

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// TestBrowser opens the pages in a real headless Chromium (Debian's
// `chromium`, installed by `make deps`) and checks what a person would see:
// curves drawn, images decoded, hover/toggle/log scale working, and not one
// console error (script errors, failed loads and CSP violations all land
// there). With DL4IMG_SCREENSHOTS=DIR it writes the README's screenshots.
func TestBrowser(t *testing.T) {
	exe := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no chromium on PATH: `make deps` installs Debian's chromium package")
		}
		t.Skip("no chromium on PATH (make deps installs it)")
	}
	f := newFixture(t, 1200)
	ts := httptest.NewServer(f.server(t, Options{}))
	defer ts.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Headless, chromedp.DisableGPU, chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelT()

	var mu sync.Mutex
	var problems []string
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning ||
				ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problems = append(problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		case *cdplog.EventEntryAdded: // CSP violations, failed loads
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				problems = append(problems, fmt.Sprintf("log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []cdp.Command[cdp.Empty, cdp.Empty]{cdplog.Enable, runtime.Enable} {
		if _, err := chromedp.Call(ctx, cmd, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
	}
	shots := os.Getenv("DL4IMG_SCREENSHOTS")
	shoot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil || len(png) < 1000 {
			t.Fatalf("screenshot %s: %d bytes, %v", name, len(png), err)
		}
		if shots != "" {
			if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	eval := func(js string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return n
	}

	// Curves: paths with real length in the visible (linear) charts.
	const drawn = `[...document.querySelectorAll('.v.lin svg.plot path.line')].filter(p => p.getTotalLength() > 100).length`
	// Images: load lazy ones now; the number decoded with a width.
	const images = `(async () => { const imgs = [...document.images]; imgs.forEach(i => i.loading = 'eager');
		await Promise.all(imgs.map(i => i.decode().catch(() => {}))); return imgs.filter(i => i.naturalWidth > 0).length; })()`
	// Hover over a chart; the tooltip shows values.
	const hover = `(() => { const svg = document.querySelector('#m-loss .v.lin svg'); const r = svg.getBoundingClientRect();
		svg.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + r.width * 0.55, clientY: r.top + r.height / 2, bubbles: true})); return 1; })()`

	do(chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible("table.jobs"))
	if n := eval(`document.querySelectorAll('tr[data-job]').length`); n != 4 {
		t.Errorf("jobs list shows %d jobs, want 4", n)
	}
	shoot("serve-jobs.png")

	do(chromedp.Navigate(fmt.Sprintf("%s/jobs/%d", ts.URL, f.done)), chromedp.WaitVisible("figure.chart"))
	if n := eval(drawn); n < 5 { // step_loss, loss, val_loss, acc, val_acc
		t.Errorf("job page: %d curves drawn", n)
	}
	if n := eval(images); n != 1 || eval(`document.images.length`) != 1 {
		t.Errorf("job page: %d images loaded, want 1", n)
	}
	eval(hover)
	do(chromedp.WaitVisible("#m-loss .tip"))
	tip, err := chromedp.Run(ctx, chromedp.Text("#m-loss .tip"))
	if err != nil || !strings.Contains(tip, "loss at") || !strings.Contains(tip, "train val_loss: ") {
		t.Errorf("hover tooltip %q (%v)", tip, err)
	}
	// A legend click hides a curve; the log toggle shows the log chart.
	do(chromedp.Click("#m-loss .legend .key"))
	if eval(`document.querySelector('#m-loss .v.lin path.line').classList.contains('off') ? 1 : 0`) != 1 {
		t.Error("legend click did not hide the curve")
	}
	do(chromedp.Click("#m-loss .logtoggle"))
	if eval(`document.querySelector('#m-loss .v.log').hidden ? 0 : [...document.querySelectorAll('#m-loss .v.log path.line:not(.off)')].filter(p => p.getTotalLength() > 100).length`) < 1 {
		t.Error("log scale toggle did not show a drawn log chart")
	}
	do(chromedp.Click("#m-loss .legend .key"), chromedp.Click("#m-loss .logtoggle")) // back, for the screenshot
	eval(hover)
	do(chromedp.WaitVisible("#m-loss .tip"))
	shoot("serve-job.png")

	do(chromedp.Navigate(fmt.Sprintf("%s/compare?jobs=%d,%d", ts.URL, f.done, f.done2)), chromedp.WaitVisible("figure.chart"))
	if n := eval(drawn); n < 8 {
		t.Errorf("compare page: %d curves drawn", n)
	}
	shoot("serve-compare.png")

	// A diverged job: its loss has a gap (NaN) and ends at +Inf, so the
	// curve is drawn in two pieces; its constant learning rate is a flat
	// line mid-chart at 0.003 with that value on the axis.
	do(chromedp.Navigate(fmt.Sprintf("%s/jobs/%d", ts.URL, f.failed)), chromedp.WaitVisible("#m-lr"))
	if n := eval(`document.querySelector('#m-loss .v.lin path.line').getAttribute('d').split('M').length - 1`); n != 2 {
		t.Errorf("diverged loss drawn in %d pieces, want 2 (a gap at the NaN)", n)
	}
	if n := eval(`[...document.querySelectorAll('#m-loss .v.lin path.line')].filter(p => p.getTotalLength() > 50).length`); n != 1 {
		t.Errorf("diverged loss: %d curves drawn", n)
	}
	const flat = `(() => { const p = document.querySelector('#m-lr .v.lin path.line'), f = document.querySelector('#m-lr .v.lin rect.frame');
		const b = p.getBBox(), r = f.getBBox(), mid = b.y - r.y - r.height / 2;
		const ticks = [...document.querySelectorAll('#m-lr .v.lin text.tick')].map(t => t.textContent);
		return (p.getTotalLength() > 100 && b.height < 1 && Math.abs(mid) < 2 && ticks.includes('0.003')) ? 1 : 0; })()`
	if eval(flat) != 1 {
		t.Error("constant lr is not a flat line mid-chart with 0.003 on its axis")
	}
	shoot("serve-diverged.png")
	// A sweep: the jobs list links each point to its sweep's page, which
	// ranks the points and plots each swept parameter against val_acc.
	sf := newSweepFixture(t, "")
	ts2 := httptest.NewServer(sf.server(t))
	defer ts2.Close()
	do(chromedp.Navigate(ts2.URL+"/"), chromedp.WaitVisible("table.jobs"))
	if n := eval(`document.querySelectorAll('a.sweeplink').length`); n != len(sweepPoints) {
		t.Errorf("jobs list: %d sweep links, want %d", n, len(sweepPoints))
	}
	do(chromedp.Click("a.sweeplink"), chromedp.WaitVisible("table.ranking"))
	if eval(fmt.Sprintf(`location.pathname === '/sweeps/%d' ? 1 : 0`, sf.sweep)) != 1 {
		t.Error("the sweep link did not open the sweep page")
	}
	if n := eval(`document.querySelectorAll('table.ranking tbody tr').length`); n != len(sweepPoints) {
		t.Errorf("ranking has %d rows", n)
	}
	// Every dot is drawn inside its chart's frame, one per point and chart.
	const dots = `[...document.querySelectorAll('svg.scatter')].map(svg => { const f = svg.querySelector('.frame').getBoundingClientRect();
		return [...svg.querySelectorAll('circle.dot')].filter(c => { const r = c.getBoundingClientRect();
			return r.width > 4 && r.left >= f.left - 1 && r.right <= f.right + 1 && r.top >= f.top - 1 && r.bottom <= f.bottom + 1; }).length; })
		.reduce((a, b) => a + b, 0)`
	if n := eval(dots); n != 2*len(sweepPoints) {
		t.Errorf("%d dots drawn inside their charts, want %d", n, 2*len(sweepPoints))
	}
	// The log-uniform learning rate has a log axis: its 1e-4 and 1e-3 ticks
	// are as far apart as 1e-3 and 1e-2.
	const decades = `(() => { const x = l => [...document.querySelectorAll('#p-learning_rate text.tick')].find(t => t.textContent === l).getBoundingClientRect().left;
		const a = x('0.0001'), b = x('0.001'), c = x('0.01'); return Math.abs((b - a) - (c - b)) < 1 && b - a > 20 ? 1 : 0; })()`
	if eval(decades) != 1 {
		t.Error("learning_rate chart: the log axis's decades are not evenly spaced")
	}
	tip, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#p-loss circle.dot.st-pruned title').textContent`))
	if err != nil || !strings.Contains(tip, "loss=bce") || !strings.Contains(tip, "pruned") {
		t.Errorf("dot title %q (%v)", tip, err)
	}
	shoot("serve-sweep.png")

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("browser: %s", p)
	}
}
