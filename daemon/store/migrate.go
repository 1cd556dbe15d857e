package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/acquit/acquit/internal/unixms"
)

// MigrationSet is a numbered set of SQL migrations owned by one package.
// The package returns it from a function (payments.Migrations(),
// transmissions.Migrations()) and the daemon's composition root passes the
// sets it needs to Open with WithMigrations; nothing registers itself, so
// a store opened with only the core set has only the core tables.
//
// Files in FS (at its root) are named NNN_description.sql (applied by every
// driver), NNN_description.sqlite.sql or NNN_description.postgres.sql (applied
// only by that driver). NNN must lie within [Min, Max]; a number is applied
// once, in increasing order across all sets, and recorded in the
// schema_migrations table. Ranges: core 1-99, payments 100-199,
// transmissions 200-299; new packages take the next free hundred.
//
// Each file runs in one transaction (both databases have transactional
// DDL: a failing file leaves nothing behind and is retried at next Open).
// Portable SQL: TEXT, BIGINT, INTEGER, BYTEA (SQLite stores bytes as
// given), ON CONFLICT upserts, RETURNING, partial indexes; put what differs
// (auto-increment keys: INTEGER PRIMARY KEY AUTOINCREMENT vs BIGSERIAL,
// triggers) in .sqlite.sql / .postgres.sql twins with the same number.
// Store times as BIGINT Unix milliseconds, 0 for no time, converted with
// internal/unixms (unixms.From, unixms.Time) as the core and the domain
// sets do: one unit compares and sorts the same way in both databases and
// across tables. Times equal to the millisecond are ties: order by (time,
// id) where the order matters.
type MigrationSet struct {
	Name     string
	FS       fs.FS
	Min, Max int
}

func checkSets(sets []MigrationSet) error {
	for i, a := range sets {
		if a.Name == "" || a.FS == nil {
			return fmt.Errorf("migration set %d: %w: name and FS required", i, ErrInvalid)
		}
		if a.Min < 1 || a.Max < a.Min {
			return fmt.Errorf("migration set %s: %w: range %d-%d", a.Name, ErrInvalid, a.Min, a.Max)
		}
		for _, b := range sets[:i] {
			if a.Name == b.Name {
				return fmt.Errorf("migration set %s: %w: given twice", a.Name, ErrConflict)
			}
			if a.Min <= b.Max && b.Min <= a.Max {
				return fmt.Errorf("migration set %s (%d-%d) overlaps %s (%d-%d): %w",
					a.Name, a.Min, a.Max, b.Name, b.Min, b.Max, ErrConflict)
			}
		}
	}
	return nil
}

// Migration is one migration file selected for a driver.
type Migration struct {
	Version int
	Set     string
	Name    string
	SQL     string
}

var migName = regexp.MustCompile(`^([0-9]{3,6})_([A-Za-z0-9_\-]+?)(\.(sqlite|postgres))?\.sql$`)

// CollectMigrations lists the migrations of sets that apply to driver,
// sorted by version. Files that do not follow the naming rule, numbers
// outside a set's range and numbers used twice are errors.
func CollectMigrations(driver string, sets []MigrationSet) ([]Migration, error) {
	if err := checkSets(sets); err != nil {
		return nil, err
	}
	var out []Migration
	seen := map[int]string{}
	for _, set := range sets {
		entries, err := fs.ReadDir(set.FS, ".")
		if err != nil {
			return nil, fmt.Errorf("migration set %s: %w", set.Name, err)
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			m := migName.FindStringSubmatch(e.Name())
			if m == nil {
				return nil, fmt.Errorf("migration set %s: file %q: %w: want NNN_name[.sqlite|.postgres].sql", set.Name, e.Name(), ErrInvalid)
			}
			if m[4] != "" && m[4] != driver {
				continue
			}
			v, _ := strconv.Atoi(m[1])
			if v < set.Min || v > set.Max {
				return nil, fmt.Errorf("migration set %s: file %q: %w: number outside %d-%d", set.Name, e.Name(), ErrInvalid, set.Min, set.Max)
			}
			if prev, dup := seen[v]; dup {
				return nil, fmt.Errorf("migration set %s: file %q: %w: number %d already used by %s", set.Name, e.Name(), ErrConflict, v, prev)
			}
			b, err := fs.ReadFile(set.FS, e.Name())
			if err != nil {
				return nil, fmt.Errorf("migration set %s: %w", set.Name, err)
			}
			seen[v] = path.Join(set.Name, e.Name())
			out = append(out, Migration{Version: v, Set: set.Name, Name: e.Name(), SQL: string(b)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// MigrateOptions tune ApplyMigrations for a driver.
type MigrateOptions struct {
	// Driver selects driver-specific files ("sqlite", "postgres").
	Driver string
	// Lock, when set, is run first in every migration transaction (e.g.
	// "SELECT pg_advisory_xact_lock(...)") so that several instances starting
	// at once apply each migration once.
	Lock string
	// Placeholder rewrites ? placeholders for the driver (nil: unchanged).
	Placeholder func(string) string
}

// ApplyMigrations creates schema_migrations if needed and applies, each in
// its own transaction, every migration of sets not yet recorded there. It
// returns the versions it applied.
//
// A version recorded in the database within the range of one of sets but
// unknown to it (or recorded for another set) is refused with ErrConflict
// before anything is applied: the database was migrated by a newer acquit
// (or a renumbered file), and running older code over it would be
// guesswork. Versions outside every given range belong to sets the caller
// did not ask for and are left alone.
func ApplyMigrations(ctx context.Context, db *sql.DB, opts MigrateOptions, sets []MigrationSet) ([]int, error) {
	migs, err := CollectMigrations(opts.Driver, sets)
	if err != nil {
		return nil, err
	}
	q := opts.Placeholder
	if q == nil {
		q = func(s string) string { return s }
	}
	if err := createMigrationsTable(ctx, db, opts); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := checkRecorded(ctx, db, sets, migs); err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range migs {
		did, err := applyOne(ctx, db, opts, q, m)
		if err != nil {
			return applied, fmt.Errorf("migration %s/%s: %w", m.Set, m.Name, err)
		}
		if did {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// checkRecorded refuses a recorded version that falls in a given set's
// range without being one of its migrations.
func checkRecorded(ctx context.Context, db *sql.DB, sets []MigrationSet, migs []Migration) error {
	known := make(map[int]string, len(migs))
	for _, m := range migs {
		known[m.Version] = m.Set
	}
	rows, err := db.QueryContext(ctx, `SELECT version, set_name, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var setName, name string
		if err := rows.Scan(&v, &setName, &name); err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		for _, set := range sets {
			if v < set.Min || v > set.Max {
				continue
			}
			if got, ok := known[v]; !ok || got != setName {
				return fmt.Errorf("migration set %s: %w: the database records version %d (%s/%s), which this build does not have: migrated by a newer acquit?",
					set.Name, ErrConflict, v, setName, name)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	return nil
}

// createMigrationsTable creates schema_migrations under the lock: on
// PostgreSQL two concurrent CREATE TABLE IF NOT EXISTS can both try.
func createMigrationsTable(ctx context.Context, db *sql.DB, opts MigrateOptions) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if opts.Lock != "" {
		if _, err := tx.ExecContext(ctx, opts.Lock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		set_name TEXT NOT NULL,
		name TEXT NOT NULL,
		applied_at BIGINT NOT NULL)`); err != nil {
		return err
	}
	return tx.Commit()
}

func applyOne(ctx context.Context, db *sql.DB, opts MigrateOptions, q func(string) string, m Migration) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if opts.Lock != "" {
		if _, err := tx.ExecContext(ctx, opts.Lock); err != nil {
			return false, fmt.Errorf("lock: %w", err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.Version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, q(`INSERT INTO schema_migrations(version, set_name, name, applied_at) VALUES (?, ?, ?, ?)`),
		m.Version, m.Set, m.Name, unixms.From(time.Now())); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// Options are the settings shared by the store implementations' Open.
type Options struct {
	// Migrations are applied after the core set (which every Open applies).
	Migrations []MigrationSet
	// MaxRawBody bounds RawInput.Body (default 16 MiB); larger bodies are
	// refused with ErrTooLarge.
	MaxRawBody int
	// Readers is the size of the SQLite read pool (default 4).
	Readers int
}

// Option changes Options.
type Option func(*Options)

// WithMigrations adds migration sets (beyond the core set) to apply at
// Open, e.g. store.WithMigrations(payments.Migrations(),
// transmissions.Migrations()). Sets with the same name or overlapping
// ranges make Open fail with ErrConflict.
func WithMigrations(sets ...MigrationSet) Option {
	return func(o *Options) { o.Migrations = append(o.Migrations, sets...) }
}

// WithMaxRawBody sets the largest raw input body accepted.
func WithMaxRawBody(n int) Option { return func(o *Options) { o.MaxRawBody = n } }

// WithReaders sets the SQLite read pool size.
func WithReaders(n int) Option { return func(o *Options) { o.Readers = n } }

// BuildOptions applies opts over the defaults.
func BuildOptions(opts ...Option) Options {
	o := Options{MaxRawBody: 16 << 20, Readers: 4}
	for _, f := range opts {
		f(&o)
	}
	if o.MaxRawBody <= 0 {
		o.MaxRawBody = 16 << 20
	}
	if o.Readers <= 0 {
		o.Readers = 4
	}
	return o
}
