package pgtest

import (
	"database/sql"
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

// Down and Up: the same server, port and data, with a gap between.
func TestDownUp(t *testing.T) {
	s, dsn := Private(t)
	Exec(t, dsn, `CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)`)
	s.Down()
	if db, err := sql.Open("pgx", dsn); err == nil {
		if err := db.Ping(); err == nil {
			t.Fatal("the server answers while down")
		}
		db.Close()
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var x int
	if err := db.QueryRow(`SELECT x FROM kept`).Scan(&x); err != nil || x != 7 {
		t.Fatalf("data after Up: %d %v", x, err)
	}
}
