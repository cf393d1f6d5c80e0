package store

import (
	"context"
	"database/sql"
	"fmt"
)

// driver is what differs between SQLite and PostgreSQL. The store's
// queries are written once, with ? placeholders, in the SQL both accept;
// a driver rewrites placeholders and supplies the few clauses and
// statements one of them lacks (as River's riverdriver does).
type driver interface {
	// bind rewrites ? placeholders into the driver's form.
	bind(q string) string
	// ddl picks the driver's text of a migration.
	ddl(m migration) string
	// version reads the schema version; 0 for a database without one.
	version(ctx context.Context, q querier) (int, error)
	// setVersion records the schema version inside a migration.
	setVersion(ctx context.Context, tx *sql.Tx, v int) error
	// lockSchema serializes migrations between processes.
	lockSchema(ctx context.Context, tx *sql.Tx) error
	// tables lists the database's tables other than dl4img's bookkeeping.
	tables(ctx context.Context, q querier) ([]string, error)
	// skipLocked is the locking clause of the claim's SELECT: rows locked
	// by another claimer are skipped, not waited for.
	skipLocked(alias string) string
	// forUpdate locks the rows a SELECT reads until the transaction ends.
	forUpdate() string
	// notifyReady wakes idle workers once the transaction commits.
	notifyReady(ctx context.Context, tx *sql.Tx) error
	// retryable reports errors after which the whole transaction may be
	// run again (serialization failures, deadlocks).
	retryable(err error) bool
	// afterCopy fixes what bulk inserts with explicit ids leave behind
	// (PostgreSQL's identity sequences).
	afterCopy(ctx context.Context, tx *sql.Tx, table string) error
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// sqliteDriver: one file, one writer at a time (BEGIN IMMEDIATE), so a
// claim needs no row locks.
type sqliteDriver struct{}

func (sqliteDriver) bind(q string) string     { return q }
func (sqliteDriver) ddl(m migration) string   { return m.sqlite }
func (sqliteDriver) skipLocked(string) string { return "" }
func (sqliteDriver) forUpdate() string        { return "" }
func (sqliteDriver) retryable(error) bool     { return false }

func (sqliteDriver) version(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

func (sqliteDriver) setVersion(ctx context.Context, tx *sql.Tx, v int) error {
	_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
	return err
}

// lockSchema: BEGIN IMMEDIATE already holds the write lock.
func (sqliteDriver) lockSchema(context.Context, *sql.Tx) error { return nil }

func (sqliteDriver) tables(ctx context.Context, q querier) ([]string, error) {
	return queryStrings(ctx, q, `SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
}

func (sqliteDriver) notifyReady(context.Context, *sql.Tx) error       { return nil }
func (sqliteDriver) afterCopy(context.Context, *sql.Tx, string) error { return nil }

// queryStrings runs a query whose rows are one string each.
func queryStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// tx is a transaction whose queries go through the driver's bind.
type tx struct {
	*sql.Tx
	ctx context.Context
	d   driver
}

func (t tx) exec(q string, args ...any) (sql.Result, error) {
	return t.ExecContext(t.ctx, t.d.bind(q), args...)
}

func (t tx) query(q string, args ...any) (*sql.Rows, error) {
	return t.QueryContext(t.ctx, t.d.bind(q), args...)
}

func (t tx) row(q string, args ...any) *sql.Row {
	return t.QueryRowContext(t.ctx, t.d.bind(q), args...)
}

func (db *DB) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return db.sql.ExecContext(ctx, db.d.bind(q), args...)
}

func (db *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.sql.QueryContext(ctx, db.d.bind(q), args...)
}

func (db *DB) row(ctx context.Context, q string, args ...any) *sql.Row {
	return db.sql.QueryRowContext(ctx, db.d.bind(q), args...)
}
