package pgtest

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// The server starts, serves two databases and is gone after Stop.
func TestStartStop(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.NewDB()
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.NewDB()
	if err != nil || a == b {
		t.Fatalf("%v %s %s", err, a, b)
	}
	dir := s.dir
	s.Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s left behind: %v", dir, err)
	}
}
