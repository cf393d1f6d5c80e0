package netbench

import (
	"context"
	"os"
	"strconv"
	"testing"
)

// TestProfileNet runs one net when NETBENCH_PROFILE=net[:batch[:steps]] is set
// (for go test -cpuprofile); it is skipped otherwise.
func TestProfileNet(t *testing.T) {
	spec := os.Getenv("NETBENCH_PROFILE")
	if spec == "" {
		t.Skip("set NETBENCH_PROFILE=net:batch:steps")
	}
	net, batch, steps := spec, 0, 2
	parts := splitColon(spec)
	net = parts[0]
	if len(parts) > 1 {
		batch, _ = strconv.Atoi(parts[1])
	}
	if len(parts) > 2 {
		steps, _ = strconv.Atoi(parts[2])
	}
	if batch == 0 {
		batch = DefaultBatch(net)
	}
	r, err := Run(context.Background(), goBackend(t), net, batch, steps)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
}

func splitColon(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == ':' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
