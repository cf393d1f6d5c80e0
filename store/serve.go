package store

// Read-only queries for `dl4img serve`. They live in their own file so the
// web UI adds to the store without reshaping what the runner uses.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// OpenReadOnly opens an existing database for reading only: it never
// creates a SQLite file, never migrates, and every write fails in the
// database itself (SQLite mode=ro; PostgreSQL read-only sessions), so a
// server built on it cannot change the history.
func OpenReadOnly(ctx context.Context, dsn string) (*DB, error) {
	if IsURL(dsn) {
		return connectPostgres(ctx, dsn, true)
	}
	abs, err := filepath.Abs(dsn)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", dsn, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("database %s: %w", dsn, err)
	}
	if err := checkFile(abs); err != nil {
		return nil, fmt.Errorf("database %s: %w", dsn, err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_busy_timeout", "15000")
	q.Set("_query_only", "1")
	sdb, err := sql.Open("sqlite3", "file:"+abs+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", dsn, err)
	}
	db := &DB{sql: sdb, d: sqliteDriver{}, name: abs}
	if err := db.checkReadable(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("database %s: %w", dsn, err)
	}
	return db, nil
}

// checkReadable accepts a dl4img database of this schema version: read-only,
// it cannot migrate an older one, whose tables lack columns the queries read.
func (db *DB) checkReadable(ctx context.Context) error {
	v, err := db.Version(ctx)
	switch {
	case err != nil:
		return err
	case v == 0:
		return errors.New("not a dl4img database (schema version 0)")
	case v > len(migrations):
		return fmt.Errorf("%w: it has schema version %d, this dl4img knows up to %d; upgrade dl4img", ErrNewerSchema, v, len(migrations))
	case v < len(migrations):
		return fmt.Errorf("schema version %d is older than this dl4img's %d: run any other dl4img command on it once (e.g. jobs list) to migrate it", v, len(migrations))
	}
	return nil
}

// ArtifactRecord is an artifact with the ids that address it: the web UI
// serves artifact files by id, never by a path from a request.
type ArtifactRecord struct {
	ID    int64
	JobID int64
	Artifact
}

const artifactRecordCols = `a.id, t.job_id, a.task_id, t.name, a.role, a.path, a.bytes, a.sha256`

func scanArtifactRecord(r scanner) (ArtifactRecord, error) {
	var a ArtifactRecord
	err := r.Scan(&a.ID, &a.JobID, &a.TaskID, &a.Task, &a.Role, &a.Path, &a.Bytes, &a.SHA256)
	return a, err
}

// JobArtifactRecords lists a job's artifacts with their ids.
func (db *DB) JobArtifactRecords(ctx context.Context, jobID int64) ([]ArtifactRecord, error) {
	rows, err := db.query(ctx, `SELECT `+artifactRecordCols+`
		FROM artifacts a JOIN tasks t ON t.id=a.task_id WHERE t.job_id=? ORDER BY a.id`, jobID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ArtifactRecord
	for rows.Next() {
		a, err := scanArtifactRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// ArtifactByID returns one artifact, or ErrNotFound.
func (db *DB) ArtifactByID(ctx context.Context, id int64) (*ArtifactRecord, error) {
	a, err := scanArtifactRecord(db.row(ctx, `SELECT `+artifactRecordCols+`
		FROM artifacts a JOIN tasks t ON t.id=a.task_id WHERE a.id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("artifact %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// MetricRange is the extent of one metric of one task. Min and Max are
// those of its finite values (NaN when it has none); Count counts every
// value.
type MetricRange struct {
	TaskID             int64
	Task               string
	Name               string
	Count              int
	Min, Max           float64
	MinStep, MaxStep   int
	MinEpoch, MaxEpoch int
}

// JobMetricRanges summarizes a job's metrics named name (all when name is
// "") in one query, so that the web UI knows each series' size and extent
// before it reads any points.
func (db *DB) JobMetricRanges(ctx context.Context, jobID int64, name string) ([]MetricRange, error) {
	where, args := "", []any{jobID}
	if name != "" {
		// A separate condition, not (?='' OR name=?), so that the index
		// on (task_id, name, step) narrows the read to this metric.
		where, args = " AND name=?", append(args, name)
	}
	// Grouping the metrics alone, then naming the tasks, lets the database
	// group along the metrics_task index instead of sorting the join.
	rows, err := db.query(ctx, `SELECT g.task_id, t.name, g.name, g.n, g.lo, g.hi, g.s0, g.s1, g.e0, g.e1
		FROM (SELECT task_id, name, COUNT(*) AS n,
				MIN(CASE WHEN `+finiteValue+` THEN value END) AS lo, MAX(CASE WHEN `+finiteValue+` THEN value END) AS hi, MIN(step) AS s0, MAX(step) AS s1,
				MIN(epoch) AS e0, MAX(epoch) AS e1
			FROM metrics WHERE task_id IN (SELECT id FROM tasks WHERE job_id=?)`+where+` GROUP BY task_id, name) g
		JOIN tasks t ON t.id=g.task_id ORDER BY g.task_id, g.name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MetricRange
	for rows.Next() {
		var r MetricRange
		if err := rows.Scan(&r.TaskID, &r.Task, &r.Name, &r.Count, metricScan{&r.Min}, metricScan{&r.Max}, &r.MinStep, &r.MaxStep,
			&r.MinEpoch, &r.MaxEpoch); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// MetricPoints returns one metric of one task in step order (Step, Epoch
// and Value filled).
func (db *DB) MetricPoints(ctx context.Context, taskID int64, name string) ([]Metric, error) {
	rows, err := db.query(ctx, `SELECT step, epoch, value FROM metrics WHERE task_id=? AND name=?
		ORDER BY step, id`, taskID, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Metric
	for rows.Next() {
		m := Metric{TaskID: taskID, Name: name}
		if err := rows.Scan(&m.Step, &m.Epoch, metricScan{&m.Value}); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// LastMetric returns the value of a task's metric at its last step.
func (db *DB) LastMetric(ctx context.Context, taskID int64, name string) (Metric, error) {
	m := Metric{TaskID: taskID, Name: name}
	err := db.row(ctx, `SELECT step, epoch, value FROM metrics WHERE task_id=? AND name=?
		ORDER BY step DESC, id DESC LIMIT 1`, taskID, name).Scan(&m.Step, &m.Epoch, metricScan{&m.Value})
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("metric %s of task %d: %w", name, taskID, ErrNotFound)
	}
	return m, err
}

// MetricBucket is the extent of the points of one x interval: Min and Max
// of its finite values (NaN when none is), Count of all of them, NonFinite
// of those that are NaN or ±Inf (a gap in a curve).
type MetricBucket struct {
	MinX, MaxX int
	Min, Max   float64
	Count      int
	NonFinite  int
}

// MetricBuckets cuts a task's metric into n equal intervals of x (the
// step, or the epoch when byEpoch) over [lo, hi] and returns the extent of
// each non-empty one, in x order. The database does the work, so a curve
// of a million points costs the caller n rows.
func (db *DB) MetricBuckets(ctx context.Context, taskID int64, name string, byEpoch bool, lo, hi, n int) ([]MetricBucket, error) {
	x := "step"
	if byEpoch {
		x = "epoch"
	}
	// Integer arithmetic: (x-lo)*n/(hi-lo+1) is the bucket, 0..n-1.
	rows, err := db.query(ctx, `SELECT MIN(`+x+`), MAX(`+x+`), MIN(CASE WHEN `+finiteValue+` THEN value END),
		MAX(CASE WHEN `+finiteValue+` THEN value END), COUNT(*), SUM(CASE WHEN `+finiteValue+` THEN 0 ELSE 1 END)
		FROM metrics WHERE task_id=? AND name=? GROUP BY (`+x+` - ?) * ? / ? ORDER BY 1`,
		taskID, name, lo, n, hi-lo+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MetricBucket
	for rows.Next() {
		var b MetricBucket
		if err := rows.Scan(&b.MinX, &b.MaxX, metricScan{&b.Min}, metricScan{&b.Max}, &b.Count, &b.NonFinite); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}
