package synth

import "testing"

func testGenerator(t testing.TB) *Generator {
	t.Helper()
	g, err := NewGenerator(Config{Seed: 42})
	if err != nil {
		t.Skipf("formula fonts unavailable: %v", err)
	}
	return g
}
