// Package store keeps dl4img's history (jobs, tasks, metrics, artifacts,
// checkpoints) in one SQLite file. It is the only package that speaks SQL.
package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

// ErrNewerSchema is returned by Open for a database written by a newer dl4img.
var ErrNewerSchema = errors.New("database schema is newer than this dl4img")

// ErrNotFound is returned when a job or task id does not exist.
var ErrNotFound = errors.New("not found")

// ErrLeaseLost is returned when a worker touches a task it no longer owns
// (its lease expired and another worker took the task over).
var ErrLeaseLost = errors.New("task lease lost")

// SchemaVersion is the schema this build writes (PRAGMA user_version).
var SchemaVersion = len(migrations)

const timeLayout = "2006-01-02T15:04:05.000Z"

func stamp(t time.Time) string { return t.UTC().Format(timeLayout) }

// DB is an open dl4img database.
type DB struct {
	sql  *sql.DB
	path string
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	if err := checkFile(abs); err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	// Pragmas go in the DSN so that every pooled connection gets them.
	// _txlock=immediate takes the write lock at BEGIN, so concurrent writers
	// wait on busy_timeout instead of failing with SQLITE_BUSY on upgrade.
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "15000")
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "NORMAL")
	q.Set("_txlock", "immediate")
	sdb, err := sql.Open("sqlite3", "file:"+abs+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	// One connection per process: SQLite allows one writer anyway, and this
	// keeps BEGIN IMMEDIATE from queueing behind our own idle connections.
	sdb.SetMaxOpenConns(1)
	db := &DB{sql: sdb, path: abs}
	if err := db.init(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	return db, nil
}

// checkFile turns the usual ways of pointing at the wrong place into clear
// errors before SQLite reports "unable to open database file".
func checkFile(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("directory %s does not exist", dir)
		}
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		probe, perr := os.CreateTemp(dir, ".dl4img-probe-*")
		if perr != nil {
			return fmt.Errorf("directory %s is not writable: %w", dir, perr)
		}
		probe.Close()
		os.Remove(probe.Name())
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return errors.New("is a directory")
	}
	head := make([]byte, 16)
	n, err := io.ReadFull(f, head)
	if n == 0 && (err == io.EOF || err == nil) {
		return nil // empty file: SQLite initializes it
	}
	if !bytes.Equal(head[:n], []byte("SQLite format 3\x00")) {
		return errors.New("not a SQLite database")
	}
	return nil
}

func (db *DB) init(ctx context.Context) error {
	var mode string
	if err := db.sql.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	var version int
	if err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("%w: it has schema version %d, this dl4img knows up to %d; upgrade dl4img", ErrNewerSchema, version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		err := db.tx(ctx, func(tx *sql.Tx) error {
			// Re-read inside the write lock: another process may have migrated.
			var cur int
			if err := tx.QueryRow("PRAGMA user_version").Scan(&cur); err != nil {
				return err
			}
			if cur != v {
				return nil
			}
			if _, err := tx.Exec(migrations[v]); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
			_, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v+1))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Path is the absolute path of the database file.
func (db *DB) Path() string { return db.path }

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// Version reports the schema version of the open database.
func (db *DB) Version(ctx context.Context) (int, error) {
	var v int
	err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

// tx runs fn in one write transaction (BEGIN IMMEDIATE).
func (db *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
