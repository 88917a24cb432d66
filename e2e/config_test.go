package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeFromEnvAndConfigFile: every serve flag can come from a
// VIPSMART_* variable or the YAML config file; a flag beats the
// environment, which beats the file; unknown keys are refused.
func TestServeFromEnvAndConfigFile(t *testing.T) {
	dir := t.TempDir()
	d := newDaemon(t, "from-env")
	port := d.port
	conf := filepath.Join(dir, "vipsmart.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("name: from-file\nlisten: 127.0.0.1:%d\ndata-dir: %s\nsocket: %s\nlog-format: text\n", port, filepath.Join(dir, "data"), d.sock)), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "VIPSMART_CONFIG="+conf, "VIPSMART_NAME=from-env", "VIPSMART_LOG_FORMAT=json")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	addr := d.server()
	eventually(t, 10*time.Second, "daemon from env and config answers", func() error {
		resp, err := d.http().Get(d.url("/healthz"))
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	st := status(t, d)
	if st.Name != "from-env" {
		t.Fatalf("name %q: the environment must beat the config file", st.Name)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "vipsmart.db")); err != nil {
		t.Fatalf("data-dir from the config file not used: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	first := strings.SplitN(strings.TrimSpace(logs.String()), "\n", 2)[0]
	var line map[string]any
	if err := json.Unmarshal([]byte(first), &line); err != nil || line["msg"] == nil {
		t.Fatalf("log line is not JSON (VIPSMART_LOG_FORMAT=json): %q", first)
	}
	// A bad flag value is refused before anything starts.
	r := cli(t, addr, "serve", "--config", conf, "--name", "Bad_Name")
	if r.code != 2 || !strings.Contains(r.stderr, "--name") {
		t.Fatalf("serve --name Bad_Name: exit %d, stderr %q", r.code, r.stderr)
	}
	// Unknown keys in the file are refused.
	if err := os.WriteFile(conf, []byte("name: x\ncolour: red\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = cli(t, addr, "serve", "--config", conf)
	if r.code != 2 || !strings.Contains(r.stderr, `unknown key "colour"`) {
		t.Fatalf("config with an unknown key: exit %d, stderr %q", r.code, r.stderr)
	}
}
