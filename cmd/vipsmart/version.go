package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Set at link time by packaging/build (go build -ldflags "-X main.version=...
// -X main.commit=... -X main.date=..."); when empty, the build info that the
// Go toolchain embeds fills them in (module version of `go install ...@v1.2.3`,
// VCS revision and commit time of a build in a checkout).
var (
	version string
	commit  string
	date    string
)

// build is what `vipsmart version` prints and vipsmart_build_info carries.
type build struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
	Modified  bool   `json:"modified,omitempty"`
}

func buildInfo() build {
	b := build{Version: version, Commit: commit, Date: date}
	if bi, ok := debug.ReadBuildInfo(); ok {
		b.GoVersion = bi.GoVersion
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.time":
				if b.Date == "" {
					b.Date = s.Value
				}
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

// String is the one line of `vipsmart --version`.
func (b build) String() string {
	c := b.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if b.Modified {
		c += "-dirty"
	}
	return fmt.Sprintf("%s (commit %s, built %s, %s)", b.Version, c, b.Date, b.GoVersion)
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version of this binary",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			b := buildInfo()
			if g.output == "json" {
				return printJSON(g.stdout, b)
			}
			var sb strings.Builder
			fmt.Fprintf(&sb, "Version:     %s\n", b.Version)
			c := b.Commit
			if b.Modified {
				c += " (modified)"
			}
			fmt.Fprintf(&sb, "Commit:      %s\n", c)
			fmt.Fprintf(&sb, "Built:       %s\n", b.Date)
			fmt.Fprintf(&sb, "Go version:  %s\n", b.GoVersion)
			_, err := fmt.Fprint(g.stdout, sb.String())
			return err
		},
	}
}
