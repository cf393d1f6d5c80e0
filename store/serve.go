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
// creates the file, never migrates it, and every write fails in SQLite
// itself (mode=ro), so a server built on it cannot change the history.
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	if err := checkFile(abs); err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_busy_timeout", "15000")
	q.Set("_query_only", "1")
	sdb, err := sql.Open("sqlite3", "file:"+abs+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	db := &DB{sql: sdb, path: abs}
	v, err := db.Version(ctx)
	if err == nil && v == 0 {
		err = errors.New("not a dl4img database (schema version 0)")
	}
	if err == nil && v > len(migrations) {
		err = fmt.Errorf("%w: it has schema version %d, this dl4img knows up to %d; upgrade dl4img", ErrNewerSchema, v, len(migrations))
	}
	if err != nil {
		sdb.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	return db, nil
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
	rows, err := db.sql.QueryContext(ctx, `SELECT `+artifactRecordCols+`
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
	a, err := scanArtifactRecord(db.sql.QueryRowContext(ctx, `SELECT `+artifactRecordCols+`
		FROM artifacts a JOIN tasks t ON t.id=a.task_id WHERE a.id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("artifact %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// JobMetricPoints returns the metrics of a job's tasks named name (every
// metric when name is ""), ordered by task, name and step. It leaves out
// the time column, which a curve does not need: a job with 100k points is
// read noticeably faster.
func (db *DB) JobMetricPoints(ctx context.Context, jobID int64, name string) ([]Metric, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT m.task_id, t.name, m.step, m.epoch, m.name, m.value
		FROM metrics m JOIN tasks t ON t.id=m.task_id WHERE t.job_id=? AND (?='' OR m.name=?)
		ORDER BY m.task_id, m.name, m.step, m.id`, jobID, name, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Metric
	for rows.Next() {
		var m Metric
		if err := rows.Scan(&m.TaskID, &m.Task, &m.Step, &m.Epoch, &m.Name, &m.Value); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MetricRange is the extent of one metric of one task.
type MetricRange struct {
	Task     string
	Name     string
	Count    int
	Min, Max float64
}

// JobMetricRanges summarizes a job's metrics in one query (the jobs list
// shows each job's headline metric without reading every point).
func (db *DB) JobMetricRanges(ctx context.Context, jobID int64) ([]MetricRange, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT t.name, m.name, COUNT(*), MIN(m.value), MAX(m.value)
		FROM metrics m JOIN tasks t ON t.id=m.task_id WHERE t.job_id=?
		GROUP BY m.task_id, t.name, m.name ORDER BY m.task_id, m.name`, jobID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MetricRange
	for rows.Next() {
		var r MetricRange
		if err := rows.Scan(&r.Task, &r.Name, &r.Count, &r.Min, &r.Max); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
