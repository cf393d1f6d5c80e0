package fuzzguard

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A hang crashes the process saying so; a stopped deadline does nothing.
func TestDeadline(t *testing.T) {
	if os.Getenv("FUZZGUARD_HANG") == "1" {
		deadline(50 * time.Millisecond)
		time.Sleep(5 * time.Second)
		return
	}
	deadline(10 * time.Millisecond)()
	time.Sleep(50 * time.Millisecond) // the stopped timer must not fire
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeadline$")
	cmd.Env = append(os.Environ(), "FUZZGUARD_HANG=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "a hang") {
		t.Fatalf("hanging input: err %v\n%s", err, out)
	}
}
