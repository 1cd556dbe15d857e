package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/acquit/acquit/internal/unixms"
)

// defaultPruneBatch is how many raw inputs one PruneRaw transaction
// examines when the caller gives no batch size.
const defaultPruneBatch = 500

// rawRefQuery lists, per dialect, the (table, column) pairs of the schema
// whose column is named raw_id or ends in _raw_id.
var rawRefQuery = map[string]string{
	"sqlite": `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND (p.name = 'raw_id' OR p.name LIKE '%\_raw\_id' ESCAPE '\')
		ORDER BY m.name, p.name`,
	"postgres": `SELECT c.table_name, c.column_name FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
		AND (c.column_name = 'raw_id' OR c.column_name LIKE '%\_raw\_id' ESCAPE '\')
		ORDER BY c.table_name, c.column_name`,
}

var sqlIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// rawColumn is a column naming raw inputs.
type rawColumn struct{ table, column string }

// RawReferences returns the columns that keep a raw input (refs: any
// table's raw_id or *_raw_id column, outside the raw_* tables) and the
// tables that are parts of a raw input, deleted with it (parts: raw_*
// tables with a raw_id column, raw_prune aside). It reads the schema, so
// a table a later migration adds is covered without being declared.
func (s *DB) RawReferences(ctx context.Context) (refs, parts []string, err error) {
	cols, err := s.rawColumns(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range cols {
		switch {
		case c.table == "raw_prune":
		case strings.HasPrefix(c.table, "raw_") && c.column == "raw_id":
			parts = append(parts, c.table)
		default:
			refs = append(refs, c.table+"."+c.column)
		}
	}
	return refs, parts, nil
}

func (s *DB) rawColumns(ctx context.Context) ([]rawColumn, error) {
	q, ok := rawRefQuery[s.D.Name]
	if !ok {
		return nil, fmt.Errorf("raw references: no schema query for driver %q", s.D.Name)
	}
	rows, err := s.R.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("raw references: %w", err)
	}
	defer rows.Close()
	var out []rawColumn
	for rows.Next() {
		var c rawColumn
		if err := rows.Scan(&c.table, &c.column); err != nil {
			return nil, fmt.Errorf("raw references: %w", err)
		}
		if !sqlIdent.MatchString(c.table) || !sqlIdent.MatchString(c.column) {
			return nil, fmt.Errorf("raw references: unexpected name %q.%q", c.table, c.column)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("raw references: %w", err)
	}
	return out, nil
}

// permitQuery lists in raw_prune the inputs of the window (cursor, last]
// received before the cut that nothing keeps. Each reference is probed
// with "col <> 0" besides "col = r.id" (no raw input has id 0, and NULL
// never matches): the partial indexes of the referencing columns (WHERE
// raw_id <> 0, WHERE raw_id IS NOT NULL) are then usable for the probe.
func permitQuery(refs []string) string {
	var keep strings.Builder
	keep.WriteString(` AND NOT EXISTS (SELECT 1 FROM raw_verdicts v WHERE v.raw_id = r.id AND v.verified <> 0)`)
	for _, ref := range refs {
		t, c, _ := strings.Cut(ref, ".")
		fmt.Fprintf(&keep, ` AND NOT EXISTS (SELECT 1 FROM %s WHERE %s.%s = r.id AND %s.%s <> 0)`, t, t, c, t, c)
	}
	return `INSERT INTO raw_prune (raw_id) SELECT r.id FROM raw_inputs r
		WHERE (r.received_at, r.id) > (?, ?) AND (r.received_at, r.id) <= (?, ?) AND r.received_at < ?` +
		keep.String() + ` ON CONFLICT (raw_id) DO NOTHING`
}

// ExplainPruneRaw returns the database's plan of the query that selects
// the prunable inputs (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN),
// one line per step, for tests that check every probe uses an index.
func (s *DB) ExplainPruneRaw(ctx context.Context) ([]string, error) {
	refs, _, err := s.RawReferences(ctx)
	if err != nil {
		return nil, err
	}
	prefix := "EXPLAIN "
	if s.D.Name == "sqlite" {
		prefix = "EXPLAIN QUERY PLAN "
	}
	rows, err := s.R.QueryContext(ctx, s.q(prefix+permitQuery(refs)), 0, 0, 1, 1, 1)
	if err != nil {
		return nil, fmt.Errorf("explain prune: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("explain prune: %w", err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("explain prune: %w", err)
		}
		out = append(out, fmt.Sprint(vals[len(vals)-1]))
	}
	return out, rows.Err()
}

// pruneCursor is where PruneRaw stopped walking the old inputs, in
// (received_at, id) order.
type pruneCursor struct {
	mu     sync.Mutex
	walked bool
	at, id int64
}

// PruneRaw deletes the raw inputs received before before that no verdict
// verified and no other table names, with their verdicts and parts, in
// transactions of at most batch inputs examined (see store.Store). Calls
// of one DB run one at a time and each resumes where the previous one
// stopped; an input recorded with a ReceivedAt older than that point (only
// tests backdate inputs) waits for the next process.
func (s *DB) PruneRaw(ctx context.Context, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = defaultPruneBatch
	}
	refs, parts, err := s.RawReferences(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune raw inputs: %w", err)
	}
	permit := permitQuery(refs)
	cut := unixms.From(before)
	// Resume after the inputs an earlier call of this process walked past:
	// each was deleted or kept for good (a verified verdict, a history row
	// or a domain row naming it never goes away), so a steady-state run
	// examines only the inputs that aged past the retention since.
	s.prune.mu.Lock()
	defer s.prune.mu.Unlock()
	atCur, idCur := int64(math.MinInt64), int64(0)
	if s.prune.walked {
		atCur, idCur = s.prune.at, s.prune.id
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("prune raw inputs: %w", err)
		}
		var n, seen int
		var atLast, idLast int64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			n, seen = 0, 0
			rows, err := s.txQuery(ctx, tx, `SELECT received_at, id FROM raw_inputs
				WHERE received_at < ? AND (received_at, id) > (?, ?) ORDER BY received_at, id LIMIT ?`,
				cut, atCur, idCur, batch)
			if err != nil {
				return fmt.Errorf("window: %w", err)
			}
			for rows.Next() {
				if err := rows.Scan(&atLast, &idLast); err != nil {
					rows.Close()
					return fmt.Errorf("window: %w", err)
				}
				seen++
			}
			if err := rows.Close(); err != nil {
				return fmt.Errorf("window: %w", err)
			}
			if seen == 0 {
				return nil
			}
			if _, err := s.txExec(ctx, tx, permit, atCur, idCur, atLast, idLast, cut); err != nil {
				return fmt.Errorf("select prunable: %w", err)
			}
			for _, p := range parts {
				if _, err := s.txExec(ctx, tx, `DELETE FROM `+p+` WHERE raw_id IN (SELECT raw_id FROM raw_prune)`); err != nil {
					return fmt.Errorf("delete %s: %w", p, err)
				}
			}
			res, err := s.txExec(ctx, tx, `DELETE FROM raw_inputs WHERE id IN (SELECT raw_id FROM raw_prune)`)
			if err != nil {
				return fmt.Errorf("delete raw inputs: %w", err)
			}
			d, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n = int(d)
			if _, err := s.txExec(ctx, tx, `DELETE FROM raw_prune`); err != nil {
				return fmt.Errorf("clear permits: %w", err)
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune raw inputs before %s: %w", before.UTC().Format(time.RFC3339), err)
		}
		total += n
		if seen > 0 {
			s.prune.walked, s.prune.at, s.prune.id = true, atLast, idLast
		}
		if seen < batch {
			return total, nil
		}
		atCur, idCur = atLast, idLast
	}
}
