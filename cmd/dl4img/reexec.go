package main

import (
	"os"
	"strings"
	"syscall"

	"github.com/dl4img/dl4img/store"
)

// dsnFlags are the flags that take a database URL, with the environment
// variable each is also read from.
var dsnFlags = map[string]string{"db": "DL4IMG_DB", "from": "DL4IMG_COPY_FROM", "to": "DL4IMG_COPY_TO"}

// reexec re-executes dl4img, early in main, when the process should run
// with other settings than it started with:
//   - GODEBUG=cpu.fma=off (see fma_simd_amd64.go);
//   - database URLs that hold a password moved from the command line, which
//     every user of the machine can read (ps, /proc/PID/cmdline), to the
//     environment, which only the process's owner can. A long-running
//     worker then never shows its password in ps.
//
// If re-executing fails, dl4img goes on as it started.
func reexec() {
	env := os.Environ()
	changed := false
	if g, ok := withFMAOff(os.Getenv("GODEBUG")); ok {
		env, changed = setEnv(env, "GODEBUG", g), true
	}
	args, moved := hidePasswords(os.Args)
	for k, v := range moved {
		env, changed = setEnv(env, k, v), true
	}
	if !changed {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, args, env) // returns only on failure
}

func setEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// hidePasswords removes the database flags whose URL holds a password from
// args and returns them as environment variables to set instead.
func hidePasswords(args []string) ([]string, map[string]string) {
	out := []string{args[0]}
	moved := map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		name, val, inline := strings.Cut(strings.TrimLeft(a, "-"), "=")
		envName, ok := dsnFlags[name]
		if !ok || !strings.HasPrefix(a, "-") {
			out = append(out, a)
			continue
		}
		if !inline {
			if i+1 >= len(args) {
				out = append(out, a)
				continue
			}
			val = args[i+1]
		}
		if !store.IsURL(val) || !store.HasPassword(val) {
			out = append(out, a)
			continue
		}
		moved[envName] = val
		if !inline {
			i++
		}
	}
	return out, moved
}
