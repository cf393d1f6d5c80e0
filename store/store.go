// Package store keeps dl4img's history (jobs, tasks, metrics, artifacts,
// checkpoints) in one SQLite file, or in a PostgreSQL database that workers
// on many machines share. It is the only package that speaks SQL.
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
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/mattn/go-sqlite3"
)

// ErrNewerSchema is returned by Open for a database written by a newer dl4img.
var ErrNewerSchema = errors.New("database schema is newer than this dl4img")

// ErrNotDL4img is returned by Open for a database that holds other tables
// and no dl4img schema: dl4img does not write into someone else's data.
var ErrNotDL4img = errors.New("not a dl4img database")

// ErrNotFound is returned when a job or task id does not exist.
var ErrNotFound = errors.New("not found")

// ErrLeaseLost is returned when a worker touches a task it no longer owns
// (its lease expired and another worker took the task over).
var ErrLeaseLost = errors.New("task lease lost")

// SchemaVersion is the schema this build writes.
var SchemaVersion = len(migrations)

const timeLayout = "2006-01-02T15:04:05.000Z"

func stamp(t time.Time) string { return t.UTC().Format(timeLayout) }

// DB is an open dl4img database.
type DB struct {
	sql  *sql.DB
	d    driver
	name string // file path, or URL without password

	pgConfig *pgx.ConnConfig // PostgreSQL only: for the LISTEN connection
	wake     waker
}

// Open opens the database named by dsn, creating and migrating it as
// needed: a postgres:// URL (libpq's forms: password in the URL, PGPASSWORD
// or ~/.pgpass; sslmode honoured), or else the path of a SQLite file.
func Open(ctx context.Context, dsn string) (*DB, error) {
	if IsURL(dsn) {
		return openPostgres(ctx, dsn)
	}
	if scheme, _, ok := strings.Cut(dsn, "://"); ok && !strings.ContainsAny(scheme, "/.") {
		return nil, fmt.Errorf("database %s: unsupported URL scheme %q (want postgres:// or a SQLite file path)", Redact(dsn), scheme)
	}
	return openSQLite(ctx, dsn)
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
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
	db := &DB{sql: sdb, d: sqliteDriver{}, name: abs}
	if err := db.checkWAL(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
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

func (db *DB) checkWAL(ctx context.Context) error {
	var mode string
	if err := db.sql.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	return nil
}

// init migrates the schema to this build's version. It refuses a database
// from a newer dl4img, and one that holds tables but no dl4img schema.
func (db *DB) init(ctx context.Context) error {
	version, err := db.d.version(ctx, db.sql)
	if err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("%w: it has schema version %d, this dl4img knows up to %d; upgrade dl4img", ErrNewerSchema, version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		err := db.tx(ctx, func(t tx) error {
			if err := db.d.lockSchema(ctx, t.Tx); err != nil {
				return err
			}
			// Re-read under the lock: another process may have migrated.
			cur, err := db.d.version(ctx, t.Tx)
			if err != nil || cur != v {
				return err
			}
			if cur == 0 {
				other, err := db.d.tables(ctx, t.Tx)
				if err != nil {
					return err
				}
				if len(other) > 0 {
					if len(other) > 3 {
						other = append(other[:3], "…")
					}
					return fmt.Errorf("%w: it has other tables (%s) and no dl4img schema", ErrNotDL4img, strings.Join(other, ", "))
				}
			}
			if _, err := t.ExecContext(ctx, db.d.ddl(migrations[v])); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
			return db.d.setVersion(ctx, t.Tx, v+1)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Path is the absolute path of a SQLite database file, or a PostgreSQL
// URL without its password: what to show the user.
func (db *DB) Path() string { return db.name }

// Close closes the database.
func (db *DB) Close() error {
	if db.wake.cancel != nil {
		db.wake.cancel()
		<-db.wake.done
	}
	return db.sql.Close()
}

// Version reports the schema version of the open database.
func (db *DB) Version(ctx context.Context) (int, error) {
	return db.d.version(ctx, db.sql)
}

// tx runs fn in one write transaction (BEGIN IMMEDIATE on SQLite). On
// PostgreSQL a transaction that lost a deadlock or serialization race is
// run again.
func (db *DB) tx(ctx context.Context, fn func(t tx) error) error {
	for try := 1; ; try++ {
		err := db.tx1(ctx, fn)
		if err == nil || try == 5 || !db.d.retryable(err) {
			return err
		}
		time.Sleep(time.Duration(try*try) * 10 * time.Millisecond)
	}
}

func (db *DB) tx1(ctx context.Context, fn func(t tx) error) error {
	stx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx{Tx: stx, ctx: ctx, d: db.d}); err != nil {
		stx.Rollback()
		return err
	}
	return stx.Commit()
}
