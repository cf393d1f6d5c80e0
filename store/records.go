package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Metric is one recorded value. Value may be NaN or ±Inf (a diverged
// loss): such values are data, stored and read back as they are.
type Metric struct {
	TaskID int64
	Task   string // task name, filled by JobMetrics
	Step   int
	Epoch  int
	Name   string
	Value  float64
	At     string
}

// metricValue is how a value is bound: NaN as NULL (see migration 5).
func metricValue(v float64) any {
	if math.IsNaN(v) {
		return nil
	}
	return v
}

// metricScan reads a metric value into *p: NULL is NaN.
type metricScan struct{ p *float64 }

func (m metricScan) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*m.p = math.NaN()
	case float64:
		*m.p = v
	case int64:
		*m.p = float64(v)
	case []byte:
		return m.Scan(string(v))
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("metric value %q: not a number", v)
		}
		*m.p = f
	default:
		return fmt.Errorf("metric value of type %T", src)
	}
	return nil
}

// finiteValue is true for a finite metric value on both databases: NULL
// (NaN) gives NULL, and Inf-Inf is NaN (PostgreSQL) or NULL (SQLite), so
// aggregates built on it skip every non-finite value.
const finiteValue = `value - value = 0`

// AddMetrics records values in one transaction. A value the task already
// recorded (same name, step, epoch and value) is skipped: a task that
// crashed between recording an epoch and checkpointing it records that
// epoch again when it resumes, and its curve must not get the point twice.
// A different value at the same step (a retry at another learning rate) is
// new data and is kept.
func (db *DB) AddMetrics(ctx context.Context, taskID int64, ms []Metric) error {
	return db.tx(ctx, func(x tx) error {
		now := stamp(time.Now())
		for _, m := range ms {
			same, args := `value=?`, []any{taskID, m.Name, m.Step, m.Epoch, m.Value}
			if math.IsNaN(m.Value) {
				same, args = `value IS NULL`, args[:4]
			}
			var n int
			if err := x.row(`SELECT count(*) FROM metrics WHERE task_id=? AND name=? AND step=? AND epoch=? AND `+same, args...).Scan(&n); err != nil {
				return fmt.Errorf("metric %s: %w", m.Name, err)
			}
			if n > 0 {
				continue
			}
			if _, err := x.exec(`INSERT INTO metrics(task_id, step, epoch, name, value, at) VALUES (?,?,?,?,?,?)`,
				taskID, m.Step, m.Epoch, m.Name, metricValue(m.Value), now); err != nil {
				return fmt.Errorf("metric %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// JobMetrics returns every metric of a job's tasks in step order.
func (db *DB) JobMetrics(ctx context.Context, jobID int64) ([]Metric, error) {
	rows, err := db.query(ctx, `SELECT m.task_id, t.name, m.step, m.epoch, m.name, m.value, m.at
		FROM metrics m JOIN tasks t ON t.id=m.task_id WHERE t.job_id=? ORDER BY m.task_id, m.name, m.step, m.id`, jobID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Metric
	for rows.Next() {
		var m Metric
		if err := rows.Scan(&m.TaskID, &m.Task, &m.Step, &m.Epoch, &m.Name, metricScan{&m.Value}, &m.At); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Artifact is a file a task produced.
type Artifact struct {
	TaskID int64
	Task   string
	Role   string
	Path   string
	Bytes  int64
	SHA256 string
}

// AddArtifact records (or, for the same task, role and path, updates) a file.
func (db *DB) AddArtifact(ctx context.Context, a Artifact) error {
	_, err := db.exec(ctx, `INSERT INTO artifacts(task_id, role, path, bytes, sha256, created_at) VALUES (?,?,?,?,?,?)
		ON CONFLICT(task_id, role, path) DO UPDATE SET bytes=excluded.bytes, sha256=excluded.sha256, created_at=excluded.created_at`,
		a.TaskID, a.Role, a.Path, a.Bytes, a.SHA256, stamp(time.Now()))
	return err
}

// JobArtifacts lists a job's artifacts.
func (db *DB) JobArtifacts(ctx context.Context, jobID int64) ([]Artifact, error) {
	rows, err := db.query(ctx, `SELECT a.task_id, t.name, a.role, a.path, a.bytes, a.sha256
		FROM artifacts a JOIN tasks t ON t.id=a.task_id WHERE t.job_id=? ORDER BY a.id`, jobID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Artifact
	for rows.Next() {
		var a Artifact
		if err := rows.Scan(&a.TaskID, &a.Task, &a.Role, &a.Path, &a.Bytes, &a.SHA256); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Checkpoint is a saved training state.
type Checkpoint struct {
	TaskID int64
	Step   int
	Path   string
}

// AddCheckpoint records a checkpoint that has been completely written.
func (db *DB) AddCheckpoint(ctx context.Context, c Checkpoint) error {
	_, err := db.exec(ctx, `INSERT INTO checkpoints(task_id, step, path, created_at) VALUES (?,?,?,?)`,
		c.TaskID, c.Step, c.Path, stamp(time.Now()))
	return err
}

// LatestCheckpoint returns the newest checkpoint of a task, or ok=false.
func (db *DB) LatestCheckpoint(ctx context.Context, taskID int64) (c Checkpoint, ok bool, err error) {
	err = db.row(ctx, `SELECT task_id, step, path FROM checkpoints WHERE task_id=? ORDER BY step DESC, id DESC LIMIT 1`,
		taskID).Scan(&c.TaskID, &c.Step, &c.Path)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	return c, err == nil, err
}

// Checkpoints lists a task's checkpoints, oldest first.
func (db *DB) Checkpoints(ctx context.Context, taskID int64) ([]Checkpoint, error) {
	rows, err := db.query(ctx, `SELECT task_id, step, path FROM checkpoints WHERE task_id=? ORDER BY step, id`, taskID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		var c Checkpoint
		if err := rows.Scan(&c.TaskID, &c.Step, &c.Path); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// MarkItemsDone records items (images, tiles) a task has finished, so a
// restarted task can skip them.
func (db *DB) MarkItemsDone(ctx context.Context, taskID int64, keys ...string) error {
	return db.tx(ctx, func(x tx) error {
		for _, k := range keys {
			if _, err := x.exec(`INSERT INTO task_items(task_id, key) VALUES (?,?) ON CONFLICT DO NOTHING`, taskID, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutItems records finished items with a value each (JSON by convention),
// in one transaction; an item recorded again gets the new value.
func (db *DB) PutItems(ctx context.Context, taskID int64, items map[string]string) error {
	return db.tx(ctx, func(x tx) error {
		for k, v := range items {
			if _, err := x.exec(`INSERT INTO task_items(task_id, key, value) VALUES (?,?,?)
				ON CONFLICT(task_id, key) DO UPDATE SET value=excluded.value`, taskID, k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Items returns a task's finished items with their values ("" for none).
func (db *DB) Items(ctx context.Context, taskID int64) (map[string]string, error) {
	rows, err := db.query(ctx, `SELECT key, COALESCE(value,'') FROM task_items WHERE task_id=?`, taskID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// ItemsDone returns the set of items a task has finished.
func (db *DB) ItemsDone(ctx context.Context, taskID int64) (map[string]bool, error) {
	rows, err := db.query(ctx, `SELECT key FROM task_items WHERE task_id=?`, taskID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	done := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		done[k] = true
	}
	return done, rows.Err()
}
