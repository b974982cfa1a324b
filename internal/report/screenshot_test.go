package report

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The screenshot the README shows; `go test ./internal/report -update`
// retakes it.
const docsScreenshot = "../../docs/training-report.png"

// Size of the screenshot: the report's width plus margins, tall enough for
// the QA run's page (asserted below: its last rows are background).
const shotWidth, shotHeight = 840, 940

// TestScreenshot renders the HTML report of testdata/run in headless
// Debian chromium and checks that the browser drew the curves: pixels of
// the train-loss, eval-loss and learning-rate colours are on the page, and
// the page ends inside the window. With -update the picture goes to
// docs/training-report.png.
func TestScreenshot(t *testing.T) {
	browser := os.Getenv("KFLLM_CHROMIUM")
	if browser == "" {
		browser = "/usr/bin/chromium"
	}
	if _, err := os.Stat(browser); err != nil {
		msg := fmt.Sprintf("no browser at %s: run scripts/setup-browser.sh (make setup) or set KFLLM_CHROMIUM", browser)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	r, err := Load(filepath.Join("testdata", "run"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "training_report.html")
	if err := os.WriteFile(page, HTML(r.Log, r.Metrics), 0o644); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The flags keep chromium off the network: on a closed network it
	// otherwise waits on its background fetches.
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--hide-scrollbars", "--force-device-scale-factor=1",
		"--user-data-dir="+filepath.Join(dir, "profile"),
		"--screenshot="+shot, fmt.Sprintf("--window-size=%d,%d", shotWidth, shotHeight),
		"file://"+page)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != shotWidth || b.Dy() != shotHeight {
		t.Fatalf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), shotWidth, shotHeight)
	}
	for name, c := range map[string]string{"train loss": colorTrain, "eval loss": colorEval, "learning rate": colorLR} {
		if n := count(img, hexColor(c)); n < 200 {
			t.Errorf("%s colour %s: %d pixels on the page, want a drawn curve", name, c, n)
		}
	}
	b := img.Bounds()
	for y := b.Max.Y - 8; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if r, g, bl, _ := img.At(x, y).RGBA(); r>>8 < 250 || g>>8 < 250 || bl>>8 < 250 {
				t.Fatalf("pixel (%d,%d) at the bottom is not background: the page is taller than the window", x, y)
			}
		}
	}
	if *update {
		png, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(docsScreenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func hexColor(s string) color.RGBA {
	var c color.RGBA
	fmt.Sscanf(s, "#%02x%02x%02x", &c.R, &c.G, &c.B)
	c.A = 255
	return c
}

// count is the number of pixels within a small distance of c.
func count(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r>>8, c.R) && near(g>>8, c.G) && near(bl>>8, c.B) {
				n++
			}
		}
	}
	return n
}

func near(a uint32, b uint8) bool { return int(a)-int(b) <= 6 && int(b)-int(a) <= 6 }
