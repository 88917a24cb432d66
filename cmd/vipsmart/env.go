package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// envName is the environment variable of a flag: VIPSMART_ and the flag's
// name in upper case with '-' turned into '_'.
func envName(flag string) string {
	return "VIPSMART_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv fills every flag that was not given on the command line from its
// environment variable and then from conf (the config file's keys, which
// are flag names). Precedence: flag, environment, config file, default.
func bindEnv(fs *pflag.FlagSet, conf map[string]any) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := setFlag(f, v); e != nil {
				err = fmt.Errorf("environment variable %s=%q: %w", envName(f.Name), v, e)
			}
			return
		}
		v, ok := conf[f.Name]
		if !ok {
			return
		}
		switch vv := v.(type) {
		case []any:
			for _, x := range vv {
				if e := setFlag(f, fmt.Sprint(x)); e != nil {
					err = fmt.Errorf("config key %s: %w", f.Name, e)
					return
				}
			}
		default:
			if e := setFlag(f, fmt.Sprint(v)); e != nil {
				err = fmt.Errorf("config key %s: %w", f.Name, e)
			}
		}
	})
	return err
}

func setFlag(f *pflag.Flag, v string) error {
	if err := f.Value.Set(v); err != nil {
		if h := rangeHint(f); h != "" {
			return fmt.Errorf("%q is not valid: give %s", v, h)
		}
		return err
	}
	f.Changed = true
	return nil
}
