package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNothingToRetry is returned by RetryJobWith when a retry that changes
// parameters finds no failed or cancelled task: the parameters of a job
// that will not run again must not change.
var ErrNothingToRetry = errors.New("no failed or cancelled task to retry")

// RetryChange is what `jobs retry --set` changes. The zero value changes
// nothing.
type RetryChange struct {
	// Params are the job's new parameters (JSON); "" keeps them.
	Params string
	// TaskParams are new parameters by task name, for the tasks queued
	// again; tasks that succeeded keep the ones they ran with.
	TaskParams map[string]string
	// Changes is what the history records: a JSON object
	// {"name": [old, new]}; "" records {}.
	Changes string
}

// Retry is one recorded `jobs retry`.
type Retry struct {
	At      string `json:"at"`
	Tasks   string `json:"tasks"`   // the task names queued again, space-separated
	Changes string `json:"changes"` // JSON {"param": [old, new]}
}

// RetryJobWith puts a job's failed and cancelled tasks back in the queue
// with a fresh attempt budget, applies ch, and records the retry (when it
// queued something), all in one transaction. It returns how many tasks it
// queued.
func (db *DB) RetryJobWith(ctx context.Context, jobID int64, ch RetryChange) (int, error) {
	var names []string
	err := db.tx(ctx, func(x tx) error {
		names = names[:0]
		var id int64
		err := x.row(`SELECT id FROM jobs WHERE id=?`, jobID).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("job %d: %w", jobID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		rows, err := x.query(`SELECT id, name FROM tasks WHERE job_id=? AND state IN ('failed','cancelled') ORDER BY id`+db.d.forUpdate(), jobID)
		if err != nil {
			return err
		}
		var ids []int64
		for rows.Next() {
			var tid int64
			var name string
			if err := rows.Scan(&tid, &name); err != nil {
				rows.Close()
				return err
			}
			ids, names = append(ids, tid), append(names, name)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			if ch.Params != "" {
				return fmt.Errorf("job %d: %w", jobID, ErrNothingToRetry)
			}
			return nil
		}
		for i, tid := range ids {
			if _, err := x.exec(`UPDATE tasks SET state='queued', attempt=0, finished_at=NULL WHERE id=?`, tid); err != nil {
				return err
			}
			if p, ok := ch.TaskParams[names[i]]; ok {
				if _, err := x.exec(`UPDATE tasks SET params=? WHERE id=?`, p, tid); err != nil {
					return err
				}
			}
		}
		if ch.Params != "" {
			if _, err := x.exec(`UPDATE jobs SET params=? WHERE id=?`, ch.Params, jobID); err != nil {
				return err
			}
		}
		if _, err := x.exec(`UPDATE jobs SET cancel=0, finished_at=NULL WHERE id=?`, jobID); err != nil {
			return err
		}
		changes := ch.Changes
		if changes == "" {
			changes = "{}"
		}
		if _, err := x.exec(`INSERT INTO job_retries(job_id, at, tasks, changes) VALUES (?,?,?,?)`,
			jobID, stamp(time.Now()), strings.Join(names, " "), changes); err != nil {
			return err
		}
		if err := db.updateJobState(x, jobID); err != nil {
			return err
		}
		return db.d.notifyReady(ctx, x.Tx)
	})
	return len(names), err
}

// JobRetries lists a job's recorded retries, oldest first.
func (db *DB) JobRetries(ctx context.Context, jobID int64) ([]Retry, error) {
	rows, err := db.query(ctx, `SELECT at, tasks, changes FROM job_retries WHERE job_id=? ORDER BY id`, jobID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Retry
	for rows.Next() {
		var r Retry
		if err := rows.Scan(&r.At, &r.Tasks, &r.Changes); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
