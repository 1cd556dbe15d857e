package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/unixms"
)

// StartRun records a run; store.ErrConflict when that due time already has
// a run or a run of the schedule is unfinished.
func (s *DB) StartRun(ctx context.Context, schedule string, scheduled time.Time, instance string, now time.Time) (int64, error) {
	if err := checkName("schedule", schedule); err != nil {
		return 0, fmt.Errorf("start run: %w", err)
	}
	if scheduled.IsZero() || now.IsZero() {
		return 0, fmt.Errorf("start run %s: %w: zero time", schedule, store.ErrInvalid)
	}
	var id int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.txQueryRow(ctx, tx, `INSERT INTO schedule_runs (schedule, scheduled, started, finished, ok, summary, error, instance)
			VALUES (?, ?, ?, 0, 0, '', '', ?) RETURNING id`, schedule, unixms.From(scheduled), unixms.From(now), truncate(instance, maxName)).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("start run %s at %s: %w", schedule, scheduled.Format(time.RFC3339), s.conflict(err))
	}
	return id, nil
}

// FinishRun records the end of a run; ErrConflict if already finished.
func (s *DB) FinishRun(ctx context.Context, id int64, ok bool, summary, errText string, now time.Time) error {
	if now.IsZero() {
		now = time.Now()
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE schedule_runs SET finished = ?, ok = ?, summary = ?, error = ? WHERE id = ? AND finished = 0`,
			unixms.From(now), b2i(ok), truncate(summary, maxErrorText), truncate(errText, maxErrorText), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var c int
			if err := s.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM schedule_runs WHERE id = ?`, id).Scan(&c); err != nil {
				return err
			}
			if c == 0 {
				return store.ErrNotFound
			}
			return fmt.Errorf("%w: already finished", store.ErrConflict)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish run %d: %w", id, err)
	}
	return nil
}

const runCols = `id, schedule, scheduled, started, finished, ok, summary, error, instance`

func scanRun(r scanner) (store.Run, error) {
	var run store.Run
	var sch, st, fin int64
	var ok int
	err := r.Scan(&run.ID, &run.Schedule, &sch, &st, &fin, &ok, &run.Summary, &run.Error, &run.Instance)
	run.Scheduled, run.Started, run.Finished, run.OK = unixms.Time(sch), unixms.Time(st), unixms.Time(fin), ok != 0
	return run, err
}

// LastRun returns the run with the latest due time.
func (s *DB) LastRun(ctx context.Context, schedule string) (*store.Run, error) {
	run, err := scanRun(s.R.QueryRowContext(ctx, s.q(`SELECT `+runCols+` FROM schedule_runs WHERE schedule = ? ORDER BY scheduled DESC, id DESC LIMIT 1`), schedule))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("last run of %s: %w", schedule, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("last run of %s: %w", schedule, err)
	}
	return &run, nil
}

// ListRuns lists the latest runs of a schedule ("" = all), newest first.
func (s *DB) ListRuns(ctx context.Context, schedule string, limit int) ([]store.Run, error) {
	if limit <= 0 || limit > 10000 {
		limit = 100
	}
	query := `SELECT ` + runCols + ` FROM schedule_runs`
	var args []any
	if schedule != "" {
		query += ` WHERE schedule = ?`
		args = append(args, schedule)
	}
	query += ` ORDER BY scheduled DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.R.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list runs of %s: %w", schedule, err)
	}
	defer rows.Close()
	var out []store.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs of %s: %w", schedule, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs of %s: %w", schedule, err)
	}
	return out, nil
}

// AbandonRuns fails unfinished runs started before cutoff.
func (s *DB) AbandonRuns(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE schedule_runs SET finished = ?, ok = 0, error = 'abandoned: the instance running it stopped'
			WHERE finished = 0 AND started < ?`, unixms.From(time.Now()), unixms.From(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("abandon runs before %s: %w", before.Format(time.RFC3339), err)
	}
	return int(n), nil
}

// AbandonInstanceRuns marks every unfinished run started by instance as
// failed. A process calls it at start: instance names are unique per
// process, so such runs belong to a predecessor that died (kill -9).
func (s *DB) AbandonInstanceRuns(ctx context.Context, instance string) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE schedule_runs SET finished = ?, ok = 0, error = 'abandoned: the process running it died'
			WHERE finished = 0 AND instance = ?`, unixms.From(time.Now()), instance)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("abandon runs of %s: %w", instance, err)
	}
	return int(n), nil
}
