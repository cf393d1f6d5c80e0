package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// ErrDestinationNotEmpty is returned by Copy when the destination already
// holds jobs: a copy never merges two histories.
var ErrDestinationNotEmpty = errors.New("destination already holds jobs")

// copyTables are a history's tables in an order that satisfies their
// foreign keys, with every column of the current schema.
var copyTables = []struct {
	name, cols, order string
}{
	{"jobs", "id, kind, name, params, state, cancel, workdir, created_at, finished_at", "id"},
	{"tasks", "id, job_id, name, kind, params, state, attempt, max_attempts, lease_owner, lease_expires_at, heartbeat_at, " +
		"started_at, finished_at, error, backend, progress_label, progress_done, progress_total, workers", "id"},
	{"task_deps", "task_id, depends_on", "task_id, depends_on"},
	{"metrics", "id, task_id, step, epoch, name, value, at", "id"},
	{"artifacts", "id, task_id, role, path, bytes, sha256, created_at", "id"},
	{"checkpoints", "id, task_id, step, path, created_at", "id"},
	{"task_items", "task_id, key, value", "task_id, key"},
	{"sweeps", "id, kind, name, spec, metric, lower, prune, created_at", "id"},
	{"sweep_points", "job_id, sweep_id, idx, params", "job_id"},
	{"sweep_reports", "task_id, epoch, value, pruned, reason, at", "task_id, epoch"},
	{"job_retries", "id, job_id, at, tasks, changes", "id"},
}

func copyTableHasID(table string) bool {
	for _, t := range copyTables {
		if t.name == table {
			return t.order == "id"
		}
	}
	return false
}

// copyBatch is how many rows go in one INSERT: well under both SQLite's and
// PostgreSQL's limits on parameters per statement.
const copyBatch = 200

// Copy copies src's whole history (jobs, tasks, dependencies, metrics,
// artifacts, checkpoints, items, retries) into dst with the same ids, between any
// two databases (SQLite or PostgreSQL). It reads src in one snapshot and
// writes dst in one transaction, so an interrupted copy leaves dst as empty
// as it was. progress, if not nil, is called with rows copied so far.
func Copy(ctx context.Context, src, dst *DB, progress func(done, total int64)) (int64, error) {
	sv, err := src.Version(ctx)
	if err != nil {
		return 0, fmt.Errorf("source: %w", err)
	}
	dv, err := dst.Version(ctx)
	if err != nil {
		return 0, fmt.Errorf("destination: %w", err)
	}
	if sv != dv {
		return 0, fmt.Errorf("source has schema version %d, destination %d", sv, dv)
	}
	stx, err := src.sql.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("source: %w", err)
	}
	defer stx.Rollback()
	s := tx{Tx: stx, ctx: ctx, d: src.d}
	var total int64
	for _, t := range copyTables {
		var n int64
		if err := s.row(`SELECT count(*) FROM ` + t.name).Scan(&n); err != nil {
			return 0, fmt.Errorf("source %s: %w", t.name, err)
		}
		total += n
	}
	var done int64
	if progress != nil {
		progress(0, total)
	}
	err = dst.tx(ctx, func(d tx) error {
		var jobs int
		if err := d.row(`SELECT count(*) FROM jobs`).Scan(&jobs); err != nil {
			return err
		}
		if jobs > 0 {
			return fmt.Errorf("%w (%d); copy into an empty database", ErrDestinationNotEmpty, jobs)
		}
		for _, t := range copyTables {
			n, err := copyTable(s, d, t.name, t.cols, t.order, func(k int64) {
				if progress != nil {
					progress(done+k, total)
				}
			})
			done += n
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			if err := dst.d.afterCopy(ctx, d.Tx, t.name); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return done, nil
}

func copyTable(s, d tx, table, cols, order string, progress func(int64)) (int64, error) {
	ncol := len(strings.Split(cols, ","))
	rows, err := s.query(fmt.Sprintf(`SELECT %s FROM %s ORDER BY %s`, cols, table, order))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", ncol), ",") + ")"
	var (
		n     int64
		batch []any
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		k := len(batch) / ncol
		q := fmt.Sprintf(`INSERT INTO %s (%s) VALUES %s`, table, cols, strings.TrimSuffix(strings.Repeat(one+",", k), ","))
		if _, err := d.exec(q, batch...); err != nil {
			return err
		}
		n += int64(k)
		progress(n)
		batch = batch[:0]
		return nil
	}
	vals := make([]any, ncol)
	ptrs := make([]any, ncol)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		for _, v := range vals {
			switch x := v.(type) {
			case []byte:
				v = string(x) // every column is TEXT, INTEGER or REAL
			case float64:
				// A NaN that PostgreSQL holds natively (written by
				// something else than dl4img) lands as dl4img writes it.
				v = metricValue(x)
			}
			batch = append(batch, v)
		}
		if len(batch) >= copyBatch*ncol {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	return n, flush()
}
