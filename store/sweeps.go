package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// A sweep is a set of jobs of one kind that differ in a few parameters
// (its points), ranked by the kind's headline metric, and maybe pruned
// early. Its points are ordinary jobs: any worker runs them.

// NewSweep describes a sweep to create with its points.
type NewSweep struct {
	Kind   string
	Name   string
	Spec   string // JSON: how the points were made
	Metric string // the headline metric that ranks the points
	Lower  bool   // a lower Metric is better
	Prune  string // JSON pruning rule; "" for none
	Points []NewPoint
}

// NewPoint is one point of a new sweep: its job and its swept values.
type NewPoint struct {
	Params string // JSON object of the swept parameters' values
	Job    NewJob
}

// Sweep is a row of the sweeps table.
type Sweep struct {
	ID        int64  `json:"id"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Spec      string `json:"-"` // JSON, read by package sweep
	Metric    string `json:"metric"`
	Lower     bool   `json:"lower_is_better"`
	Prune     string `json:"-"` // JSON, read by package sweep
	CreatedAt string `json:"created_at"`
}

// CreateSweep inserts a sweep and one job per point in one transaction:
// every point is queued, or none is. It returns the sweep's id and the
// points' job ids in order.
func (db *DB) CreateSweep(ctx context.Context, s NewSweep) (int64, []int64, error) {
	var id int64
	var jobs []int64
	err := db.tx(ctx, func(t tx) error {
		jobs = jobs[:0]
		lower := 0
		if s.Lower {
			lower = 1
		}
		if err := t.row(`INSERT INTO sweeps(kind, name, spec, metric, lower, prune, created_at) VALUES (?,?,?,?,?,?,?) RETURNING id`,
			s.Kind, s.Name, s.Spec, s.Metric, lower, s.Prune, stamp(time.Now())).Scan(&id); err != nil {
			return err
		}
		for i, p := range s.Points {
			job, err := createJob(t, p.Job)
			if err != nil {
				return fmt.Errorf("point %d: %w", i+1, err)
			}
			if _, err := t.exec(`INSERT INTO sweep_points(job_id, sweep_id, idx, params) VALUES (?,?,?,?)`,
				job, id, i+1, p.Params); err != nil {
				return err
			}
			jobs = append(jobs, job)
		}
		return db.d.notifyReady(ctx, t.Tx)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("store sweep: %w", err)
	}
	return id, jobs, nil
}

const sweepCols = `s.id, s.kind, s.name, s.spec, s.metric, s.lower, s.prune, s.created_at`

func scanSweep(r scanner) (Sweep, error) {
	var s Sweep
	err := r.Scan(&s.ID, &s.Kind, &s.Name, &s.Spec, &s.Metric, &s.Lower, &s.Prune, &s.CreatedAt)
	return s, err
}

// Sweep returns one sweep, or ErrNotFound.
func (db *DB) Sweep(ctx context.Context, id int64) (*Sweep, error) {
	s, err := scanSweep(db.row(ctx, `SELECT `+sweepCols+` FROM sweeps s WHERE s.id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sweep %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// SweepOfJob returns the sweep a job is a point of, or ErrNotFound.
func (db *DB) SweepOfJob(ctx context.Context, jobID int64) (*Sweep, error) {
	s, err := scanSweep(db.row(ctx, `SELECT `+sweepCols+` FROM sweeps s JOIN sweep_points p ON p.sweep_id=s.id
		WHERE p.job_id=?`, jobID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sweep of job %d: %w", jobID, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// Sweeps lists all sweeps, newest first.
func (db *DB) Sweeps(ctx context.Context) ([]Sweep, error) {
	rows, err := db.query(ctx, `SELECT `+sweepCols+` FROM sweeps s ORDER BY s.id DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Sweep
	for rows.Next() {
		s, err := scanSweep(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// SweepPoint is one point of a sweep with what ranking it needs.
type SweepPoint struct {
	Job        int64
	Index      int    // 1-based
	Params     string // JSON object of the swept values
	State      string // the job's state
	StartedAt  string // its first task's start; "" while queued
	FinishedAt string
	// Best is the best value of the sweep's metric over the job's tasks and
	// epochs, when HasBest; Epoch the last epoch that reported it.
	Best    float64
	HasBest bool
	Epoch   int
	// PrunedAt is the epoch a pruning rule stopped the point at (0: not pruned).
	PrunedAt int
	// Error is the first failed task's error ("" if none failed).
	Error string
}

// SweepPoints lists a sweep's points in their order, each with its job's
// state and the best value of the sweep's metric, in one query.
func (db *DB) SweepPoints(ctx context.Context, sweepID int64) ([]SweepPoint, error) {
	s, err := db.Sweep(ctx, sweepID)
	if err != nil {
		return nil, err
	}
	agg := "MAX"
	if s.Lower {
		agg = "MIN"
	}
	rows, err := db.query(ctx, `SELECT p.job_id, p.idx, p.params, j.state,
			COALESCE((SELECT MIN(t.started_at) FROM tasks t WHERE t.job_id=j.id), ''), COALESCE(j.finished_at, ''),
			(SELECT `+agg+`(m.value) FROM metrics m JOIN tasks t ON t.id=m.task_id WHERE t.job_id=j.id AND m.name=?),
			COALESCE((SELECT MAX(m.epoch) FROM metrics m JOIN tasks t ON t.id=m.task_id WHERE t.job_id=j.id AND m.name=?), 0),
			COALESCE((SELECT MIN(r.epoch) FROM sweep_reports r JOIN tasks t ON t.id=r.task_id
				WHERE t.job_id=j.id AND r.pruned=1), 0),
			COALESCE((SELECT t.error FROM tasks t WHERE t.job_id=j.id AND t.state='failed' ORDER BY t.id LIMIT 1), '')
		FROM sweep_points p JOIN jobs j ON j.id=p.job_id WHERE p.sweep_id=? ORDER BY p.idx`, s.Metric, s.Metric, sweepID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SweepPoint
	for rows.Next() {
		var p SweepPoint
		var best sql.NullFloat64
		if err := rows.Scan(&p.Job, &p.Index, &p.Params, &p.State, &p.StartedAt, &p.FinishedAt, &best, &p.Epoch,
			&p.PrunedAt, &p.Error); err != nil {
			return nil, err
		}
		p.Best, p.HasBest = best.Float64, best.Valid
		out = append(out, p)
	}
	return out, rows.Err()
}

// PointRef names a job's place in a sweep.
type PointRef struct {
	Sweep int64
	Index int
}

// JobSweeps maps the jobs that are sweep points to their sweep and index.
func (db *DB) JobSweeps(ctx context.Context) (map[int64]PointRef, error) {
	rows, err := db.query(ctx, `SELECT job_id, sweep_id, idx FROM sweep_points`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]PointRef{}
	for rows.Next() {
		var job int64
		var r PointRef
		if err := rows.Scan(&job, &r.Sweep, &r.Index); err != nil {
			return nil, err
		}
		out[job] = r
	}
	return out, rows.Err()
}

// EpochReport is a sweep point's headline value at an epoch's end, as
// pruning rules see it.
type EpochReport struct {
	Job    int64
	Epoch  int
	Value  float64
	Pruned bool // the decision taken then
	// Done: the reporting task has finished (succeeded): a completed
	// point, in Optuna's terms.
	Done bool
}

// ErrNotSweepPoint is returned by ReportEpoch for a task whose job is not
// a sweep point.
var ErrNotSweepPoint = errors.New("not a sweep point")

// ReportEpoch records the value of a sweep point's task at the end of an
// epoch and the pruning decision decide takes from it: own holds the
// task's reports up to this one (the last), others those of the tasks of
// the same name in the sweep's other points. It runs in one transaction
// that holds the sweep's row, so concurrent points decide one after the
// other. A report already recorded — a resumed task running an epoch
// again — returns the recorded decision: decisions survive a kill.
func (db *DB) ReportEpoch(ctx context.Context, taskID int64, epoch int, value float64,
	decide func(own, others []EpochReport) (prune bool, reason string)) (pruned bool, reason string, err error) {
	err = db.tx(ctx, func(x tx) error {
		var sweep, job int64
		var name string
		err := x.row(`SELECT p.sweep_id, t.job_id, t.name FROM tasks t JOIN sweep_points p ON p.job_id=t.job_id WHERE t.id=?`,
			taskID).Scan(&sweep, &job, &name)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("task %d: %w", taskID, ErrNotSweepPoint)
		}
		if err != nil {
			return err
		}
		var locked int64
		if err := x.row(`SELECT id FROM sweeps WHERE id=?`+db.d.forUpdate(), sweep).Scan(&locked); err != nil {
			return err
		}
		err = x.row(`SELECT pruned, reason FROM sweep_reports WHERE task_id=? AND epoch=?`, taskID, epoch).Scan(&pruned, &reason)
		if err == nil || !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		rows, err := x.query(`SELECT t.id, t.job_id, r.epoch, r.value, r.pruned, t.state FROM sweep_reports r
			JOIN tasks t ON t.id=r.task_id JOIN sweep_points p ON p.job_id=t.job_id
			WHERE p.sweep_id=? AND t.name=? ORDER BY t.job_id, r.epoch`, sweep, name)
		if err != nil {
			return err
		}
		var own, others []EpochReport
		for rows.Next() {
			var tid int64
			var r EpochReport
			var state string
			if err := rows.Scan(&tid, &r.Job, &r.Epoch, metricScan{&r.Value}, &r.Pruned, &state); err != nil {
				rows.Close()
				return err
			}
			r.Done = state == Succeeded
			if tid == taskID {
				own = append(own, r)
			} else {
				others = append(others, r)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		own = append(own, EpochReport{Job: job, Epoch: epoch, Value: value})
		pruned, reason = decide(own, others)
		flag := 0
		if pruned {
			flag = 1
		}
		_, err = x.exec(`INSERT INTO sweep_reports(task_id, epoch, value, pruned, reason, at) VALUES (?,?,?,?,?,?)`,
			taskID, epoch, metricValue(value), flag, reason, stamp(time.Now()))
		return err
	})
	if err != nil {
		return false, "", fmt.Errorf("sweep report of task %d: %w", taskID, err)
	}
	return pruned, reason, nil
}
