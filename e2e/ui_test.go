package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser returns the path of a Chromium (or Chrome) for the browser
// tests, or skips the test saying why.
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found (apt-get install chromium; CI installs it): the web UI's browser test cannot run")
	return ""
}

// startUI runs `vipsmart ui` against server on a free loopback port and
// returns the page's URL.
func startUI(t *testing.T, server string) string {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(bin, "--server", server, "ui", "--listen", addr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("vipsmart ui printed:\n%s", out.String())
		}
	})
	url := "http://" + addr + "/ui/"
	eventually(t, 10*time.Second, "vipsmart ui answering", func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	})
	return url
}

// screenshotDir is where the browser test writes its screenshots:
// docs/img when VIPSMART_UPDATE_SCREENSHOTS is set (to refresh the
// committed ones), else a temporary directory.
func screenshotDir(t *testing.T) string {
	if os.Getenv("VIPSMART_UPDATE_SCREENSHOTS") != "" {
		dir, err := filepath.Abs("../docs/img")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// TestUIBrowser drives the web UI in headless Chromium against a real
// federation of three DCs: the page shows the three DCs; after dc-1 is
// killed with SIGKILL, the same page (no reload) shows dc-1 unreachable
// and the GIP active on dc-2 within 2 s. It writes a screenshot of each
// state.
func TestUIBrowser(t *testing.T) {
	chrome := browser(t)
	ds := make([]*daemon, 3)
	for i := range ds {
		ds[i] = startDaemon(t, fmt.Sprintf("dc-%d", i+1), fedTimers...)
	}
	for _, d := range ds[1:] {
		mustDCAdd(t, ds[0], d)
	}
	mustCLI(t, ds[0].server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200,dc-2:150,dc-3:100")
	mustCLI(t, ds[0].server(), "gip", "add", "api", "203.0.113.20", "--mode", "anycast", "--placement", "dc-1:100,dc-2:100,dc-3:100")
	mustCLI(t, ds[1].server(), "vip", "add", "web", "192.0.2.10")
	url := startUI(t, ds[1].server())
	shots := screenshotDir(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox, // root in CI
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancelC := chromedp.NewContext(actx)
	defer cancelC()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(shots, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}

	// The three DCs, all reachable, and www active on dc-1.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`g.node[data-dc="dc-1"][data-reachable="true"]`)),
		chromedp.WaitVisible(chromedp.CSS(`g.node[data-dc="dc-3"][data-reachable="true"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-gip="www"][data-active="dc-1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)),
	); err != nil {
		t.Fatalf("the page never showed three reachable DCs with www active on dc-1: %v", err)
	}
	nodes, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__vipsmartLoad = 42; document.querySelectorAll("#fed-svg g.node").length`))
	if err != nil {
		t.Fatal(err)
	}
	if nodes != 3 {
		t.Fatalf("the federation picture shows %d DCs, want 3", nodes)
	}
	shot("ui-federation.png")

	// kill -9 dc-1: without a reload the page shows it unreachable and
	// www active on dc-2, within 2s.
	ds[0].kill()
	start := time.Now()
	wctx, cancelW := context.WithTimeout(ctx, 2*time.Second)
	err = chromedp.Do(wctx,
		chromedp.WaitVisible(chromedp.CSS(`g.node[data-dc="dc-1"][data-reachable="false"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-gip="www"][data-active="dc-2"]`)),
	)
	cancelW()
	took := time.Since(start)
	if err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS(`#gips`)))
		shot("ui-failover-timeout.png")
		t.Fatalf("2s after kill -9 of dc-1 the page does not show dc-1 unreachable and www active on dc-2: %v\n%s", err, html)
	}
	t.Logf("the page showed the failover %s after kill -9", took.Round(time.Millisecond))
	load, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__vipsmartLoad || 0`))
	if err != nil {
		t.Fatal(err)
	}
	live, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#live").classList.contains("on")`))
	if err != nil {
		t.Fatal(err)
	}
	if load != 42 {
		t.Fatalf("the page was reloaded (marker %d): the update must come without a reload", load)
	}
	if !live {
		t.Errorf("the live indicator is not on")
	}
	// Let the event log show the takeover before the screenshot.
	_ = chromedp.Do(ctx, chromedp.Sleep(300*time.Millisecond))
	shot("ui-dc-1-killed.png")
}
