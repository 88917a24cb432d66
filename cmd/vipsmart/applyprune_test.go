package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestApplyPruneNoObjects: apply --prune of files that declare no object
// (an empty file, an empty standard input after a failed export, a file
// of comments) is refused before anything is sent (exit 2), naming the
// files; without the refusal it removed every VIP and GIP. The server
// here does not exist: a request sent would fail with exit 1.
func TestApplyPruneNoObjects(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "none.sock")
	for _, content := range []string{"", "# nothing\n---\n", "[]"} {
		f := filepath.Join(dir, "empty.yaml")
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code := run([]string{"--server", sock, "apply", "--prune", "-f", f}, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), f) || !strings.Contains(errb.String(), "declare no object") {
			t.Fatalf("apply --prune of %q: exit %d\n%s%s", content, code, out.String(), errb.String())
		}
	}
}

// TestExportOutputMessage: export -o xml names the formats export has.
func TestExportOutputMessage(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--server", filepath.Join(t.TempDir(), "none.sock"), "export", "-o", "xml"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "give yaml (the default) or json") {
		t.Fatalf("export -o xml: exit %d\n%s", code, errb.String())
	}
}
