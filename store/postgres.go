package store

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// readyChannel is the LISTEN/NOTIFY channel that says a task may have
// become runnable.
const readyChannel = "dl4img_ready"

// schemaLockKey is the advisory lock that serializes migrations between
// processes ("dl4img" in ASCII).
const schemaLockKey = 0x646c34696d67

// IsURL reports whether a --db value names a PostgreSQL server rather than
// a SQLite file.
func IsURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// pgDriver speaks PostgreSQL through pgx's database/sql adapter.
type pgDriver struct{}

// bind numbers the ? placeholders ($1, $2, …). The store's queries have no
// ? inside string literals.
func (pgDriver) bind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (pgDriver) ddl(m migration) string { return m.postgres }

func (pgDriver) version(ctx context.Context, q querier) (int, error) {
	// A catalog query, not to_regclass: that reads a cache that may miss
	// a table another process created while this one waited for the lock.
	var exists bool
	if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables
		WHERE schemaname = current_schema() AND tablename = 'dl4img_schema')`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := q.QueryRowContext(ctx, `SELECT version FROM dl4img_schema`).Scan(&v)
	return v, err
}

func (pgDriver) setVersion(ctx context.Context, tx *sql.Tx, v int) error {
	for _, q := range []string{`CREATE TABLE IF NOT EXISTS dl4img_schema (version INTEGER NOT NULL)`, `DELETE FROM dl4img_schema`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO dl4img_schema(version) VALUES ($1)`, v)
	return err
}

func (pgDriver) lockSchema(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLockKey))
	return err
}

func (pgDriver) tables(ctx context.Context, q querier) ([]string, error) {
	return queryStrings(ctx, q, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name <> 'dl4img_schema' ORDER BY 1`)
}

func (pgDriver) skipLocked(alias string) string { return " FOR UPDATE OF " + alias + " SKIP LOCKED" }
func (pgDriver) forUpdate() string              { return " FOR UPDATE" }

func (pgDriver) notifyReady(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "NOTIFY "+readyChannel)
	return err
}

func (pgDriver) retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func (pgDriver) afterCopy(ctx context.Context, tx *sql.Tx, table string) error {
	if !copyTableHasID(table) {
		return nil
	}
	_, err := tx.ExecContext(ctx, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%[1]s', 'id'), COALESCE((SELECT max(id) FROM %[1]s), 0) + 1, false)`, table))
	return err
}

// openPostgres connects to a PostgreSQL database and migrates it. Every
// error names the database without its password.
func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	return connectPostgres(ctx, dsn, false)
}

// connectPostgres opens the database at dsn; readOnly sessions refuse every
// write (default_transaction_read_only) and skip migrations, which would
// write, checking the schema version instead.
func connectPostgres(ctx context.Context, dsn string, readOnly bool) (*DB, error) {
	name := Redact(dsn)
	fail := func(err error) error { return scrubbed(fmt.Errorf("database %s: %w", name, err), dsn) }
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fail(errors.New("not a valid PostgreSQL URL (want postgres://user@host:5432/dbname?sslmode=…)"))
	}
	// A host that drops packets would otherwise hang the command.
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "dl4img"
	}
	if readOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	sdb := stdlib.OpenDB(*cfg)
	// Each worker slot holds at most a claim and a heartbeat at once;
	// bound the pool so many workers stay under max_connections.
	sdb.SetMaxOpenConns(16)
	sdb.SetMaxIdleConns(4)
	sdb.SetConnMaxIdleTime(time.Minute)
	db := &DB{sql: sdb, d: pgDriver{}, name: name, pgConfig: cfg}
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fail(connectError(err))
	}
	check := db.init
	if readOnly {
		check = db.checkReadable
	}
	if err := check(ctx); err != nil {
		sdb.Close()
		return nil, fail(err)
	}
	return db, nil
}

// connectError shortens pgx's connection errors to what the user can act on.
func connectError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		if inner := errors.Unwrap(ce); inner != nil {
			return fmt.Errorf("cannot connect: %w", inner)
		}
	}
	return err
}

// userinfoPassword finds the password of a URL's user (everything up to
// the last @, so an unescaped @ or / in a password is covered too), and
// queryPassword a password= parameter.
var (
	userinfoPassword = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*://[^:@/]*):(.*)@`)
	queryPassword    = regexp.MustCompile(`(?i)([?&]password=)([^&]*)`)
)

// Redact returns a database location fit to print: a URL's password is
// replaced by xxxxx. Paths are returned as they are.
func Redact(dsn string) string {
	if !strings.Contains(dsn, "://") {
		return dsn
	}
	s := userinfoPassword.ReplaceAllString(dsn, "${1}:xxxxx@")
	return queryPassword.ReplaceAllString(s, "${1}xxxxx")
}

// passwords lists the forms a DSN's password may take in a message.
func passwords(dsn string) []string {
	var raw []string
	if m := userinfoPassword.FindStringSubmatch(dsn); m != nil {
		raw = append(raw, m[2])
	}
	for _, m := range queryPassword.FindAllStringSubmatch(dsn, -1) {
		raw = append(raw, m[2])
	}
	var out []string
	for _, p := range raw {
		if p == "" {
			continue
		}
		out = append(out, p)
		if u, err := url.PathUnescape(p); err == nil && u != p {
			out = append(out, u)
		}
		if u, err := url.QueryUnescape(p); err == nil && u != p {
			out = append(out, u)
		}
	}
	return out
}

// Scrub removes the passwords of dsns from a message.
func Scrub(msg string, dsns ...string) string {
	for _, d := range dsns {
		for _, p := range passwords(d) {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// scrubbedError is an error whose message has had a password removed; it
// still unwraps to the original for errors.Is.
type scrubbedError struct {
	msg string
	err error
}

func (e scrubbedError) Error() string { return e.msg }
func (e scrubbedError) Unwrap() error { return e.err }

func scrubbed(err error, dsn string) error {
	return scrubbedError{msg: Scrub(err.Error(), dsn), err: err}
}

// IsUnavailable reports whether err says the database could not be
// reached (connection refused or lost, server shutting down), as opposed
// to a mistake in what was asked: the former is worth retrying.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-03: shutdown, crash
		// recovery, not yet accepting; 53300: too many connections.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || pe.Code == "53300"
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, sqldriver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, sql.ErrConnDone) ||
		pgconn.Timeout(err) || strings.Contains(err.Error(), "conn closed")
}

// waker hands out channels that close at the next NOTIFY on readyChannel.
type waker struct {
	once   sync.Once
	mu     sync.Mutex
	ch     chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *waker) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *waker) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// Ready returns a channel that is closed when a task may have become
// runnable (PostgreSQL's LISTEN/NOTIFY). On SQLite it returns nil, which
// never fires: workers poll. Take the channel before looking for work, so
// that a notification between the look and the wait is not missed.
func (db *DB) Ready() <-chan struct{} {
	if db.pgConfig == nil {
		return nil
	}
	db.wake.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		db.wake.cancel = cancel
		db.wake.done = make(chan struct{})
		go db.listen(ctx)
	})
	return db.wake.wait()
}

// listen holds its own connection (not the pool's: LISTEN is per session)
// and reconnects with backoff when it is lost; meanwhile workers poll.
func (db *DB) listen(ctx context.Context) {
	defer close(db.wake.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := db.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (db *DB) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, db.pgConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+readyChannel); err != nil {
		return err
	}
	// Anything that happened while we were not listening.
	db.wake.fire()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		db.wake.fire()
	}
}

// HasPassword reports whether a database URL holds a password.
func HasPassword(dsn string) bool { return len(passwords(dsn)) > 0 }
