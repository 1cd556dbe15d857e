// Package postgres is acquit's store on PostgreSQL (jackc/pgx/v5 through
// database/sql), for several instances sharing one database. Claims use
// SELECT ... FOR UPDATE SKIP LOCKED so that instances never lease the same
// event; Emit takes a transaction-scoped advisory lock on the event's
// subject so that, per subject, insertion order (seq) is also commit order
// and a claimer can never see a later event of a subject before an earlier
// one commits. (A transaction emitting for subjects X then Y while another
// emits for Y then X can deadlock; PostgreSQL aborts one of them with
// SQLSTATE 40P01. Emit for one subject per transaction, or in a fixed
// order.)
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"database/sql"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// CoreMigrations is the core schema (numbers 1-99) for PostgreSQL.
func CoreMigrations() store.MigrationSet {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	return store.MigrationSet{Name: "core", FS: sub, Min: 1, Max: 99}
}

// migrationLockKey is the advisory lock serialising migrations of
// instances starting at once.
const migrationLockKey = 7_245_001_001

// subjectLockClass is the first key of the two-key advisory locks Emit
// takes per subject (the second is hashtext(subject)); two-key locks do
// not collide with single-key ones such as migrationLockKey.
const subjectLockClass = 7245

// Store is the PostgreSQL store; it implements store.Store.
type Store struct {
	*sqlstore.DB
}

var (
	_ store.Store = (*Store)(nil)
)

// Open connects to dsn (a libpq URL or key=value string) and applies the
// migrations: the core set and the sets given with store.WithMigrations
// (the caller decides which: the daemon passes payments' and
// transmissions'). Instances opening at once serialise on an advisory lock.
func Open(ctx context.Context, dsn string, opts ...store.Option) (*Store, error) {
	o := store.BuildOptions(opts...)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres open: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres open: %w", err)
	}
	sets := []store.MigrationSet{CoreMigrations()}
	sets = append(sets, o.Migrations...)
	if _, err := store.ApplyMigrations(ctx, db, store.MigrateOptions{
		Driver:      "postgres",
		Lock:        "SELECT pg_advisory_xact_lock(" + strconv.Itoa(migrationLockKey) + ")",
		Placeholder: Rebind,
	}, sets); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres open: %w", err)
	}
	return &Store{DB: &sqlstore.DB{
		W: db, R: db, MaxRawBody: o.MaxRawBody,
		D: sqlstore.Dialect{
			Name:        "postgres",
			Rebind:      Rebind,
			IsUnique:    isUnique,
			ClaimLock:   " FOR UPDATE OF e SKIP LOCKED",
			RowLock:     " FOR UPDATE",
			SubjectLock: "SELECT pg_advisory_xact_lock(" + strconv.Itoa(subjectLockClass) + ", hashtext(?))",
		},
	}}, nil
}

func isUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

// Rebind rewrites ? placeholders to $1, $2... It leaves alone question
// marks inside string literals ('...', E'...'), quoted identifiers ("..."),
// dollar-quoted strings ($tag$...$tag$) and comments (-- and /* */); ??
// stands for a literal ? (a jsonb operator).
func Rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				if c == '\'' && q[j] == '\\' && i > 0 && (q[i-1] == 'E' || q[i-1] == 'e') && j+1 < len(q) {
					j += 2
					continue
				}
				j++
			}
			if j < len(q) {
				j++
			}
			b.WriteString(q[i:j])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			b.WriteString(q[i : i+j])
			i += j
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			end := len(q)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			b.WriteString(q[i:end])
			i = end
		case c == '$' && (i == 0 || !isIdent(q[i-1])):
			// $tag$ ... $tag$ (tag may be empty); $1 stays as is.
			j := i + 1
			for j < len(q) && isIdent(q[j]) && !(j == i+1 && q[j] >= '0' && q[j] <= '9') {
				j++
			}
			if j < len(q) && q[j] == '$' {
				tag := q[i : j+1]
				k := strings.Index(q[j+1:], tag)
				end := len(q)
				if k >= 0 {
					end = j + 1 + k + len(tag)
				}
				b.WriteString(q[i:end])
				i = end
				continue
			}
			b.WriteByte(c)
			i++
		case c == '?':
			if i+1 < len(q) && q[i+1] == '?' {
				b.WriteByte('?')
				i += 2
				continue
			}
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func isIdent(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
