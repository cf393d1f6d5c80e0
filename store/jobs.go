package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Task and job states.
const (
	Queued    = "queued"
	Running   = "running"
	Succeeded = "succeeded"
	Failed    = "failed"
	Cancelled = "cancelled"
)

// NewJob describes a job to insert with its planned task DAG.
type NewJob struct {
	Kind    string
	Name    string
	Params  string // JSON
	WorkDir string // base directory; the job gets WorkDir/job-<id>
	Tasks   []NewTask
}

// NewTask is one node of a job's DAG. Deps name earlier tasks of the same job.
type NewTask struct {
	Name        string
	Kind        string
	Params      string // JSON
	Deps        []string
	MaxAttempts int
}

// Job is a row of the jobs table.
type Job struct {
	ID         int64
	Kind       string
	Name       string
	Params     string
	State      string
	Cancel     bool
	WorkDir    string
	CreatedAt  string
	FinishedAt string
}

// Task is a row of the tasks table.
type Task struct {
	ID             int64
	JobID          int64
	Name           string
	Kind           string
	Params         string
	State          string
	Attempt        int
	MaxAttempts    int
	LeaseOwner     string
	LeaseExpiresAt string
	StartedAt      string
	FinishedAt     string
	Error          string
	Backend        string
	ProgressLabel  string
	ProgressDone   int
	ProgressTotal  int
	Deps           []int64
}

// CreateJob inserts a job and its tasks in one transaction.
func (db *DB) CreateJob(ctx context.Context, j NewJob) (int64, error) {
	var id int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		now := stamp(time.Now())
		res, err := tx.Exec(`INSERT INTO jobs(kind, name, params, state, workdir, created_at) VALUES (?,?,?,?,?,?)`,
			j.Kind, j.Name, j.Params, Queued, "", now)
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		wd := filepath.Join(j.WorkDir, fmt.Sprintf("job-%d", id))
		if _, err := tx.Exec(`UPDATE jobs SET workdir=? WHERE id=?`, wd, id); err != nil {
			return err
		}
		ids := map[string]int64{}
		for _, t := range j.Tasks {
			if _, dup := ids[t.Name]; dup {
				return fmt.Errorf("task %q planned twice", t.Name)
			}
			maxA := t.MaxAttempts
			if maxA <= 0 {
				maxA = 3
			}
			res, err := tx.Exec(`INSERT INTO tasks(job_id, name, kind, params, state, max_attempts) VALUES (?,?,?,?,?,?)`,
				id, t.Name, t.Kind, t.Params, Queued, maxA)
			if err != nil {
				return err
			}
			tid, err := res.LastInsertId()
			if err != nil {
				return err
			}
			for _, d := range t.Deps {
				did, ok := ids[d]
				if !ok {
					return fmt.Errorf("task %q depends on %q, which is not planned before it", t.Name, d)
				}
				if _, err := tx.Exec(`INSERT INTO task_deps(task_id, depends_on) VALUES (?,?)`, tid, did); err != nil {
					return err
				}
			}
			ids[t.Name] = tid
		}
		return nil
	})
	return id, err
}

const taskCols = `id, job_id, name, kind, params, state, attempt, max_attempts, COALESCE(lease_owner,''),
	COALESCE(lease_expires_at,''), COALESCE(started_at,''), COALESCE(finished_at,''), COALESCE(error,''),
	COALESCE(backend,''), COALESCE(progress_label,''), progress_done, progress_total`

type scanner interface{ Scan(dest ...any) error }

func scanTask(r scanner) (*Task, error) {
	var t Task
	err := r.Scan(&t.ID, &t.JobID, &t.Name, &t.Kind, &t.Params, &t.State, &t.Attempt, &t.MaxAttempts, &t.LeaseOwner,
		&t.LeaseExpiresAt, &t.StartedAt, &t.FinishedAt, &t.Error, &t.Backend, &t.ProgressLabel, &t.ProgressDone, &t.ProgressTotal)
	return &t, err
}

// Claim atomically takes the next runnable task (queued, all dependencies
// succeeded) for owner, optionally only from job jobID (0 = any job), and
// leases it until now+lease. Before claiming it rescues tasks whose lease
// expired: back to queued, or failed once max_attempts is used up.
// It returns nil, nil when nothing is runnable.
func (db *DB) Claim(ctx context.Context, owner string, jobID int64, lease time.Duration) (*Task, error) {
	var t *Task
	err := db.tx(ctx, func(tx *sql.Tx) error {
		now := time.Now()
		if err := rescue(tx, now); err != nil {
			return fmt.Errorf("rescue expired leases: %w", err)
		}
		row := tx.QueryRow(`UPDATE tasks SET state='running', attempt=attempt+1, lease_owner=?, lease_expires_at=?,
			heartbeat_at=?, started_at=COALESCE(started_at, ?), error=NULL
			WHERE id = (SELECT t.id FROM tasks t JOIN jobs j ON j.id=t.job_id
				WHERE t.state='queued' AND j.cancel=0 AND (?=0 OR t.job_id=?)
				AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks p ON p.id=d.depends_on
					WHERE d.task_id=t.id AND p.state<>'succeeded')
				ORDER BY t.job_id, t.id LIMIT 1)
			RETURNING `+taskCols,
			owner, stamp(now.Add(lease)), stamp(now), stamp(now), jobID, jobID)
		var err error
		t, err = scanTask(row)
		if errors.Is(err, sql.ErrNoRows) {
			t = nil
			return nil
		}
		if err != nil {
			return err
		}
		return updateJobState(tx, t.JobID)
	})
	if err != nil {
		return nil, fmt.Errorf("claim task: %w", err)
	}
	return t, nil
}

// rescue requeues (or fails) running tasks whose lease has expired.
func rescue(tx *sql.Tx, now time.Time) error {
	rows, err := tx.Query(`SELECT id, job_id, attempt, max_attempts, COALESCE(lease_owner,'') FROM tasks
		WHERE state='running' AND lease_expires_at < ?`, stamp(now))
	if err != nil {
		return err
	}
	type exp struct {
		id, job      int64
		attempt, max int
		owner        string
	}
	var list []exp
	for rows.Next() {
		var e exp
		if err := rows.Scan(&e.id, &e.job, &e.attempt, &e.max, &e.owner); err != nil {
			rows.Close()
			return err
		}
		list = append(list, e)
	}
	rows.Close()
	for _, e := range list {
		msg := fmt.Sprintf("lease of worker %s expired in attempt %d (worker died?)", e.owner, e.attempt)
		if e.attempt >= e.max {
			if err := finish(tx, e.id, Failed, msg+"; max attempts reached", now); err != nil {
				return err
			}
		} else {
			if _, err := tx.Exec(`UPDATE tasks SET state='queued', lease_owner=NULL, lease_expires_at=NULL, error=? WHERE id=?`,
				msg, e.id); err != nil {
				return err
			}
		}
		if err := updateJobState(tx, e.job); err != nil {
			return err
		}
	}
	return nil
}

// Heartbeat extends owner's lease on a task. It reports whether the job was
// cancelled, and ErrLeaseLost when the task is no longer owner's.
func (db *DB) Heartbeat(ctx context.Context, taskID int64, owner string, lease time.Duration) (cancelled bool, err error) {
	err = db.tx(ctx, func(tx *sql.Tx) error {
		now := time.Now()
		res, err := tx.Exec(`UPDATE tasks SET lease_expires_at=?, heartbeat_at=? WHERE id=? AND state='running' AND lease_owner=?`,
			stamp(now.Add(lease)), stamp(now), taskID, owner)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrLeaseLost
		}
		return tx.QueryRow(`SELECT j.cancel FROM jobs j JOIN tasks t ON t.job_id=j.id WHERE t.id=?`, taskID).Scan(&cancelled)
	})
	if err != nil {
		return false, fmt.Errorf("heartbeat task %d: %w", taskID, err)
	}
	return cancelled, nil
}

// Finish records the outcome of a task run by owner: Succeeded, Failed or
// Cancelled. A failure cancels the tasks that depend on it.
func (db *DB) Finish(ctx context.Context, taskID int64, owner, state, errText string) error {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var job int64
		err := tx.QueryRow(`SELECT job_id FROM tasks WHERE id=? AND state='running' AND lease_owner=?`, taskID, owner).Scan(&job)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrLeaseLost
		}
		if err != nil {
			return err
		}
		if err := finish(tx, taskID, state, errText, time.Now()); err != nil {
			return err
		}
		return updateJobState(tx, job)
	})
	if err != nil {
		return fmt.Errorf("finish task %d: %w", taskID, err)
	}
	return nil
}

func finish(tx *sql.Tx, taskID int64, state, errText string, now time.Time) error {
	var e any
	if errText != "" {
		e = errText
	}
	if _, err := tx.Exec(`UPDATE tasks SET state=?, error=?, finished_at=?, lease_owner=NULL, lease_expires_at=NULL WHERE id=?`,
		state, e, stamp(now), taskID); err != nil {
		return err
	}
	if state != Failed && state != Cancelled {
		return nil
	}
	// Everything downstream can no longer run.
	var name string
	if err := tx.QueryRow(`SELECT name FROM tasks WHERE id=?`, taskID).Scan(&name); err != nil {
		return err
	}
	_, err := tx.Exec(`WITH RECURSIVE down(id) AS (
			SELECT task_id FROM task_deps WHERE depends_on=?
			UNION SELECT d.task_id FROM task_deps d JOIN down ON d.depends_on=down.id)
		UPDATE tasks SET state='cancelled', finished_at=?, error=? WHERE id IN down AND state='queued'`,
		taskID, stamp(now), fmt.Sprintf("upstream task %s %s", name, state))
	return err
}

// Requeue puts an interrupted task back in the queue without using up an
// attempt: it will resume from its last checkpoint.
func (db *DB) Requeue(ctx context.Context, taskID int64, owner, reason string) error {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE tasks SET state='queued', attempt=attempt-1, lease_owner=NULL, lease_expires_at=NULL, error=?
			WHERE id=? AND state='running' AND lease_owner=?`, reason, taskID, owner)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrLeaseLost
		}
		return updateJobStateOf(tx, taskID)
	})
	if err != nil {
		return fmt.Errorf("requeue task %d: %w", taskID, err)
	}
	return nil
}

func updateJobStateOf(tx *sql.Tx, taskID int64) error {
	var job int64
	if err := tx.QueryRow(`SELECT job_id FROM tasks WHERE id=?`, taskID).Scan(&job); err != nil {
		return err
	}
	return updateJobState(tx, job)
}

// updateJobState derives a job's state from its tasks.
func updateJobState(tx *sql.Tx, job int64) error {
	n := map[string]int{}
	rows, err := tx.Query(`SELECT state, count(*) FROM tasks WHERE job_id=? GROUP BY state`, job)
	if err != nil {
		return err
	}
	for rows.Next() {
		var s string
		var c int
		if err := rows.Scan(&s, &c); err != nil {
			rows.Close()
			return err
		}
		n[s] = c
	}
	rows.Close()
	var state string
	switch {
	case n[Running] > 0:
		state = Running
	case n[Queued] > 0 && n[Succeeded]+n[Failed]+n[Cancelled] > 0:
		state = Running
	case n[Queued] > 0:
		state = Queued
	case n[Failed] > 0:
		state = Failed
	case n[Cancelled] > 0:
		state = Cancelled
	default:
		state = Succeeded
	}
	fin := any(nil)
	if state == Succeeded || state == Failed || state == Cancelled {
		fin = stamp(time.Now())
	}
	_, err = tx.Exec(`UPDATE jobs SET state=?, finished_at=CASE WHEN ? IS NULL THEN NULL ELSE COALESCE(finished_at, ?) END WHERE id=?`,
		state, fin, fin, job)
	return err
}

// CancelJob asks a job to stop: queued tasks are cancelled now, running ones
// see it at their next heartbeat.
func (db *DB) CancelJob(ctx context.Context, jobID int64) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE jobs SET cancel=1 WHERE id=?`, jobID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("job %d: %w", jobID, ErrNotFound)
		}
		if _, err := tx.Exec(`UPDATE tasks SET state='cancelled', finished_at=?, error='job cancelled' WHERE job_id=? AND state='queued'`,
			stamp(time.Now()), jobID); err != nil {
			return err
		}
		return updateJobState(tx, jobID)
	})
}

// RetryJob puts a job's failed and cancelled tasks back in the queue with a
// fresh attempt budget. Succeeded tasks are kept.
func (db *DB) RetryJob(ctx context.Context, jobID int64) (int, error) {
	var n int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE jobs SET cancel=0, finished_at=NULL WHERE id=?`, jobID)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return fmt.Errorf("job %d: %w", jobID, ErrNotFound)
		}
		res, err = tx.Exec(`UPDATE tasks SET state='queued', attempt=0, finished_at=NULL WHERE job_id=? AND state IN ('failed','cancelled')`, jobID)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return updateJobState(tx, jobID)
	})
	return int(n), err
}

// SetProgress records how far a running task is.
func (db *DB) SetProgress(ctx context.Context, taskID int64, label string, done, total int) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE tasks SET progress_label=?, progress_done=?, progress_total=? WHERE id=?`,
		label, done, total, taskID)
	return err
}

// SetBackend records the GoMLX backend a task runs on.
func (db *DB) SetBackend(ctx context.Context, taskID int64, backend string) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE tasks SET backend=? WHERE id=?`, backend, taskID)
	return err
}

// Job returns one job.
func (db *DB) Job(ctx context.Context, id int64) (*Job, error) {
	jobs, err := db.jobs(ctx, `WHERE id=?`, id)
	if err != nil {
		return nil, err
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	return &jobs[0], nil
}

// Jobs lists all jobs, newest first.
func (db *DB) Jobs(ctx context.Context) ([]Job, error) {
	return db.jobs(ctx, `ORDER BY id DESC`)
}

func (db *DB) jobs(ctx context.Context, where string, args ...any) ([]Job, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, kind, name, params, state, cancel, workdir, created_at,
		COALESCE(finished_at,'') FROM jobs `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		var j Job
		if err := rows.Scan(&j.ID, &j.Kind, &j.Name, &j.Params, &j.State, &j.Cancel, &j.WorkDir, &j.CreatedAt, &j.FinishedAt); err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// Tasks lists a job's tasks in plan order, with their dependencies.
func (db *DB) Tasks(ctx context.Context, jobID int64) ([]Task, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+taskCols+` FROM tasks WHERE job_id=? ORDER BY id`, jobID)
	if err != nil {
		return nil, err
	}
	var out []Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, *t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		deps, err := db.sql.QueryContext(ctx, `SELECT depends_on FROM task_deps WHERE task_id=? ORDER BY depends_on`, out[i].ID)
		if err != nil {
			return nil, err
		}
		for deps.Next() {
			var d int64
			if err := deps.Scan(&d); err != nil {
				deps.Close()
				return nil, err
			}
			out[i].Deps = append(out[i].Deps, d)
		}
		deps.Close()
	}
	return out, nil
}

// Task returns one task.
func (db *DB) Task(ctx context.Context, id int64) (*Task, error) {
	t, err := scanTask(db.sql.QueryRowContext(ctx, `SELECT `+taskCols+` FROM tasks WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("task %d: %w", id, ErrNotFound)
	}
	return t, err
}

// Active counts a scope's tasks that are queued or running (jobID 0 = all jobs).
func (db *DB) Active(ctx context.Context, jobID int64) (queued, running int, err error) {
	err = db.sql.QueryRowContext(ctx, `SELECT COALESCE(SUM(t.state='queued'),0), COALESCE(SUM(t.state='running'),0)
		FROM tasks t JOIN jobs j ON j.id=t.job_id WHERE (?=0 OR t.job_id=?) AND j.cancel=0`, jobID, jobID).Scan(&queued, &running)
	return
}

// TaskNames maps task ids of a job to names, for display.
func TaskNames(tasks []Task) map[int64]string {
	m := make(map[int64]string, len(tasks))
	for _, t := range tasks {
		m[t.ID] = t.Name
	}
	return m
}

// DepNames returns the names of t's dependencies.
func DepNames(t Task, names map[int64]string) string {
	var s []string
	for _, d := range t.Deps {
		s = append(s, names[d])
	}
	return strings.Join(s, ",")
}
