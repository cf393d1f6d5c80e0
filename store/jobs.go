package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	// Pruned: a sweep's pruning rule stopped the task early. It is not a
	// failure and is not retried; the tasks after it are pruned with it.
	Pruned = "pruned"
)

// NewJob describes a job to insert with its planned task DAG.
type NewJob struct {
	Kind   string
	Name   string
	Params string // JSON
	Tasks  []NewTask
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
	ID     int64
	Kind   string
	Name   string
	Params string
	State  string
	Cancel bool
	// WorkDir is the job's directory relative to the workdir root
	// ("job-7"), so that workers mounting the shared folder at different
	// places all find it. Histories from before that record an absolute
	// path, which is used as it is.
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
	// Workers lists the workers (host:pid/slot) that claimed the task,
	// space-separated, oldest first.
	Workers string
	Deps    []int64
}

// JobDirName is where a job's files go, relative to the workdir root.
func JobDirName(id int64) string { return fmt.Sprintf("job-%d", id) }

// CreateJob inserts a job and its tasks in one transaction.
func (db *DB) CreateJob(ctx context.Context, j NewJob) (int64, error) {
	var id int64
	err := db.tx(ctx, func(t tx) (err error) {
		if id, err = createJob(t, j); err != nil {
			return err
		}
		return db.d.notifyReady(ctx, t.Tx)
	})
	return id, err
}

// createJob inserts a job and its task DAG inside t.
func createJob(t tx, j NewJob) (int64, error) {
	var id int64
	now := stamp(time.Now())
	if err := t.row(`INSERT INTO jobs(kind, name, params, state, workdir, created_at) VALUES (?,?,?,?,?,?) RETURNING id`,
		j.Kind, j.Name, j.Params, Queued, "", now).Scan(&id); err != nil {
		return 0, err
	}
	if _, err := t.exec(`UPDATE jobs SET workdir=? WHERE id=?`, JobDirName(id), id); err != nil {
		return 0, err
	}
	ids := map[string]int64{}
	for _, nt := range j.Tasks {
		if _, dup := ids[nt.Name]; dup {
			return 0, fmt.Errorf("task %q planned twice", nt.Name)
		}
		maxA := nt.MaxAttempts
		if maxA <= 0 {
			maxA = 3
		}
		var tid int64
		if err := t.row(`INSERT INTO tasks(job_id, name, kind, params, state, max_attempts) VALUES (?,?,?,?,?,?) RETURNING id`,
			id, nt.Name, nt.Kind, nt.Params, Queued, maxA).Scan(&tid); err != nil {
			return 0, err
		}
		for _, d := range nt.Deps {
			did, ok := ids[d]
			if !ok {
				return 0, fmt.Errorf("task %q depends on %q, which is not planned before it", nt.Name, d)
			}
			if _, err := t.exec(`INSERT INTO task_deps(task_id, depends_on) VALUES (?,?)`, tid, did); err != nil {
				return 0, err
			}
		}
		ids[nt.Name] = tid
	}
	return id, nil
}

const taskCols = `id, job_id, name, kind, params, state, attempt, max_attempts, COALESCE(lease_owner,''),
	COALESCE(lease_expires_at,''), COALESCE(started_at,''), COALESCE(finished_at,''), COALESCE(error,''),
	COALESCE(backend,''), COALESCE(progress_label,''), progress_done, progress_total, workers`

type scanner interface{ Scan(dest ...any) error }

func scanTask(r scanner) (*Task, error) {
	var t Task
	err := r.Scan(&t.ID, &t.JobID, &t.Name, &t.Kind, &t.Params, &t.State, &t.Attempt, &t.MaxAttempts, &t.LeaseOwner,
		&t.LeaseExpiresAt, &t.StartedAt, &t.FinishedAt, &t.Error, &t.Backend, &t.ProgressLabel, &t.ProgressDone, &t.ProgressTotal,
		&t.Workers)
	return &t, err
}

// Claim atomically takes the next runnable task (queued, all dependencies
// succeeded) for owner, optionally only from job jobID (0 = any job), and
// leases it until now+lease. Before claiming it rescues tasks whose lease
// expired: back to queued, or failed once max_attempts is used up.
// It returns nil, nil when nothing is runnable.
//
// The claim is one transaction: SELECT … FOR UPDATE SKIP LOCKED on
// PostgreSQL, so concurrent claimers take different tasks without waiting
// for each other; on SQLite the transaction holds the file's write lock.
func (db *DB) Claim(ctx context.Context, owner string, jobID int64, lease time.Duration) (*Task, error) {
	return db.ClaimIn(ctx, owner, Scope{Job: jobID}, lease)
}

// Scope limits what a worker claims and waits for: one job (Job), the
// points of one sweep (Sweep), or everything (zero).
type Scope struct{ Job, Sweep int64 }

// ClaimIn is Claim within a scope.
func (db *DB) ClaimIn(ctx context.Context, owner string, scope Scope, lease time.Duration) (*Task, error) {
	if err := db.rescue(ctx, time.Now()); err != nil {
		return nil, fmt.Errorf("rescue expired leases: %w", err)
	}
	var t *Task
	err := db.tx(ctx, func(x tx) error {
		now := time.Now()
		var id int64
		err := x.row(`SELECT t.id FROM tasks t JOIN jobs j ON j.id=t.job_id
			WHERE t.state='queued' AND j.cancel=0 AND `+scopeSQL+`
			AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks p ON p.id=d.depends_on
				WHERE d.task_id=t.id AND p.state<>'succeeded')
			ORDER BY t.job_id, t.id LIMIT 1`+db.d.skipLocked("t"), scope.args()...).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			t = nil
			return nil
		}
		if err != nil {
			return err
		}
		t, err = scanTask(x.row(`UPDATE tasks SET state='running', attempt=attempt+1, lease_owner=?, lease_expires_at=?,
			heartbeat_at=?, started_at=COALESCE(started_at, ?), error=NULL, workers=TRIM(workers || ' ' || ?)
			WHERE id=? RETURNING `+taskCols,
			owner, stamp(now.Add(lease)), stamp(now), stamp(now), owner, id))
		if err != nil {
			return err
		}
		// A job with a running task is running: no need to count its
		// tasks, nor to wait for the job row unless its state changes
		// (many claimers of one job's tasks would queue on it).
		_, err = x.exec(`UPDATE jobs SET state='running', finished_at=NULL WHERE id=? AND state<>'running'`, t.JobID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim task: %w", err)
	}
	return t, nil
}

// rescue requeues (or fails) running tasks whose lease has expired. It
// looks first without a transaction: almost always there is nothing to do.
// It is its own transaction, apart from the claim, so that job rows are
// locked in one order (task rows first, then their jobs by id).
func (db *DB) rescue(ctx context.Context, now time.Time) error {
	var n int
	if err := db.row(ctx, `SELECT count(*) FROM tasks WHERE state='running' AND lease_expires_at < ?`, stamp(now)).Scan(&n); err != nil || n == 0 {
		return err
	}
	return db.tx(ctx, func(x tx) error {
		rows, err := x.query(`SELECT id, job_id, attempt, max_attempts, COALESCE(lease_owner,'') FROM tasks
			WHERE state='running' AND lease_expires_at < ? ORDER BY job_id, id`+db.d.skipLocked("tasks"), stamp(now))
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
		if err := rows.Err(); err != nil {
			return err
		}
		jobs := map[int64]bool{}
		for _, e := range list {
			msg := fmt.Sprintf("lease of worker %s expired in attempt %d (worker died?)", e.owner, e.attempt)
			if e.attempt >= e.max {
				if err := finish(x, e.id, Failed, msg+"; max attempts reached", now); err != nil {
					return err
				}
			} else {
				if _, err := x.exec(`UPDATE tasks SET state='queued', lease_owner=NULL, lease_expires_at=NULL, error=? WHERE id=?`,
					msg, e.id); err != nil {
					return err
				}
			}
			jobs[e.job] = true
		}
		for _, e := range list { // in job id order
			if jobs[e.job] {
				delete(jobs, e.job)
				if err := db.updateJobState(x, e.job); err != nil {
					return err
				}
			}
		}
		if len(list) == 0 {
			return nil
		}
		return db.d.notifyReady(ctx, x.Tx)
	})
}

// Heartbeat extends owner's lease on a task. It reports whether the job was
// cancelled, and ErrLeaseLost when the task is no longer owner's.
func (db *DB) Heartbeat(ctx context.Context, taskID int64, owner string, lease time.Duration) (cancelled bool, err error) {
	err = db.tx(ctx, func(x tx) error {
		now := time.Now()
		res, err := x.exec(`UPDATE tasks SET lease_expires_at=?, heartbeat_at=? WHERE id=? AND state='running' AND lease_owner=?`,
			stamp(now.Add(lease)), stamp(now), taskID, owner)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrLeaseLost
		}
		return x.row(`SELECT j.cancel FROM jobs j JOIN tasks t ON t.job_id=j.id WHERE t.id=?`, taskID).Scan(&cancelled)
	})
	if err != nil {
		return false, fmt.Errorf("heartbeat task %d: %w", taskID, err)
	}
	return cancelled, nil
}

// Finish records the outcome of a task run by owner: Succeeded, Failed or
// Cancelled. A failure cancels the tasks that depend on it.
func (db *DB) Finish(ctx context.Context, taskID int64, owner, state, errText string) error {
	err := db.tx(ctx, func(x tx) error {
		var job int64
		err := x.row(`SELECT job_id FROM tasks WHERE id=? AND state='running' AND lease_owner=?`+db.d.forUpdate(),
			taskID, owner).Scan(&job)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrLeaseLost
		}
		if err != nil {
			return err
		}
		if err := finish(x, taskID, state, errText, time.Now()); err != nil {
			return err
		}
		if err := db.updateJobState(x, job); err != nil {
			return err
		}
		if state == Succeeded { // its dependents may be runnable now
			return db.d.notifyReady(ctx, x.Tx)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish task %d: %w", taskID, err)
	}
	return nil
}

func finish(x tx, taskID int64, state, errText string, now time.Time) error {
	var e any
	if errText != "" {
		e = errText
	}
	if _, err := x.exec(`UPDATE tasks SET state=?, error=?, finished_at=?, lease_owner=NULL, lease_expires_at=NULL WHERE id=?`,
		state, e, stamp(now), taskID); err != nil {
		return err
	}
	if state != Failed && state != Cancelled && state != Pruned {
		return nil
	}
	// Everything downstream can no longer run: cancelled, or pruned with
	// a pruned task (its point is over, not broken).
	down := Cancelled
	if state == Pruned {
		down = Pruned
	}
	var name string
	if err := x.row(`SELECT name FROM tasks WHERE id=?`, taskID).Scan(&name); err != nil {
		return err
	}
	_, err := x.exec(`WITH RECURSIVE down(id) AS (
			SELECT task_id FROM task_deps WHERE depends_on=?
			UNION SELECT d.task_id FROM task_deps d JOIN down ON d.depends_on=down.id)
		UPDATE tasks SET state=?, finished_at=?, error=? WHERE id IN (SELECT id FROM down) AND state='queued'`,
		taskID, down, stamp(now), fmt.Sprintf("upstream task %s %s", name, state))
	return err
}

// Requeue puts an interrupted task back in the queue without using up an
// attempt: it will resume from its last checkpoint.
func (db *DB) Requeue(ctx context.Context, taskID int64, owner, reason string) error {
	err := db.tx(ctx, func(x tx) error {
		var job int64
		err := x.row(`UPDATE tasks SET state='queued', attempt=attempt-1, lease_owner=NULL, lease_expires_at=NULL, error=?
			WHERE id=? AND state='running' AND lease_owner=? RETURNING job_id`, reason, taskID, owner).Scan(&job)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrLeaseLost
		}
		if err != nil {
			return err
		}
		if err := db.updateJobState(x, job); err != nil {
			return err
		}
		return db.d.notifyReady(ctx, x.Tx)
	})
	if err != nil {
		return fmt.Errorf("requeue task %d: %w", taskID, err)
	}
	return nil
}

// updateJobState derives a job's state from its tasks. On PostgreSQL it
// first locks the job's row: two transactions that finish the job's last
// two tasks would otherwise each count the other's task as still running.
func (db *DB) updateJobState(x tx, job int64) error {
	var locked int64
	if err := x.row(`SELECT id FROM jobs WHERE id=?`+db.d.forUpdate(), job).Scan(&locked); err != nil {
		return err
	}
	n := map[string]int{}
	rows, err := x.query(`SELECT state, count(*) FROM tasks WHERE job_id=? GROUP BY state`, job)
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
	if err := rows.Err(); err != nil {
		return err
	}
	var state string
	switch {
	case n[Running] > 0:
		state = Running
	case n[Queued] > 0 && n[Succeeded]+n[Failed]+n[Cancelled]+n[Pruned] > 0:
		state = Running
	case n[Queued] > 0:
		state = Queued
	case n[Failed] > 0:
		state = Failed
	case n[Pruned] > 0:
		state = Pruned
	case n[Cancelled] > 0:
		state = Cancelled
	default:
		state = Succeeded
	}
	if state != Running && state != Queued {
		_, err = x.exec(`UPDATE jobs SET state=?, finished_at=COALESCE(finished_at, ?) WHERE id=?`, state, stamp(time.Now()), job)
	} else {
		_, err = x.exec(`UPDATE jobs SET state=?, finished_at=NULL WHERE id=?`, state, job)
	}
	return err
}

// CancelJob asks a job to stop: queued tasks are cancelled now, running ones
// see it at their next heartbeat. Task rows are written before the job's
// row, the order every transaction follows.
func (db *DB) CancelJob(ctx context.Context, jobID int64) error {
	return db.tx(ctx, func(x tx) error {
		if _, err := x.exec(`UPDATE tasks SET state='cancelled', finished_at=?, error='job cancelled' WHERE job_id=? AND state='queued'`,
			stamp(time.Now()), jobID); err != nil {
			return err
		}
		res, err := x.exec(`UPDATE jobs SET cancel=1 WHERE id=?`, jobID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("job %d: %w", jobID, ErrNotFound)
		}
		return db.updateJobState(x, jobID)
	})
}

// RetryJob puts a job's failed and cancelled tasks back in the queue with a
// fresh attempt budget. Succeeded tasks are kept. The retry is recorded
// (RetryJobWith with no change).
func (db *DB) RetryJob(ctx context.Context, jobID int64) (int, error) {
	return db.RetryJobWith(ctx, jobID, RetryChange{})
}

// SetProgress records how far a running task is.
func (db *DB) SetProgress(ctx context.Context, taskID int64, label string, done, total int) error {
	_, err := db.exec(ctx, `UPDATE tasks SET progress_label=?, progress_done=?, progress_total=? WHERE id=?`,
		label, done, total, taskID)
	return err
}

// SetBackend records the GoMLX backend a task runs on.
func (db *DB) SetBackend(ctx context.Context, taskID int64, backend string) error {
	_, err := db.exec(ctx, `UPDATE tasks SET backend=? WHERE id=?`, backend, taskID)
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
	rows, err := db.query(ctx, `SELECT id, kind, name, params, state, cancel, workdir, created_at,
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
	rows, err := db.query(ctx, `SELECT `+taskCols+` FROM tasks WHERE job_id=? ORDER BY id`, jobID)
	if err != nil {
		return nil, err
	}
	var out []Task
	index := map[int64]int{}
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		index[t.ID] = len(out)
		out = append(out, *t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	deps, err := db.query(ctx, `SELECT d.task_id, d.depends_on FROM task_deps d JOIN tasks t ON t.id=d.task_id
		WHERE t.job_id=? ORDER BY d.task_id, d.depends_on`, jobID)
	if err != nil {
		return nil, err
	}
	defer deps.Close()
	for deps.Next() {
		var id, d int64
		if err := deps.Scan(&id, &d); err != nil {
			return nil, err
		}
		if i, ok := index[id]; ok {
			out[i].Deps = append(out[i].Deps, d)
		}
	}
	return out, deps.Err()
}

// Task returns one task.
func (db *DB) Task(ctx context.Context, id int64) (*Task, error) {
	t, err := scanTask(db.row(ctx, `SELECT `+taskCols+` FROM tasks WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("task %d: %w", id, ErrNotFound)
	}
	return t, err
}

// Active counts a scope's tasks that are queued or running (jobID 0 = all jobs).
func (db *DB) Active(ctx context.Context, jobID int64) (queued, running int, err error) {
	return db.ActiveIn(ctx, Scope{Job: jobID})
}

// ActiveIn is Active within a scope.
func (db *DB) ActiveIn(ctx context.Context, scope Scope) (queued, running int, err error) {
	err = db.row(ctx, `SELECT COALESCE(SUM(CASE WHEN t.state='queued' THEN 1 ELSE 0 END),0),
		COALESCE(SUM(CASE WHEN t.state='running' THEN 1 ELSE 0 END),0)
		FROM tasks t JOIN jobs j ON j.id=t.job_id WHERE `+scopeSQL+` AND j.cancel=0`, scope.args()...).Scan(&queued, &running)
	return
}

// scopeSQL is a Scope's condition on tasks t; scope.args() binds it.
const scopeSQL = `(?=0 OR t.job_id=?) AND (?=0 OR t.job_id IN (SELECT job_id FROM sweep_points WHERE sweep_id=?))`

func (s Scope) args() []any { return []any{s.Job, s.Job, s.Sweep, s.Sweep} }

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
