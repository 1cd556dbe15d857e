// Package pgtest gives tests a PostgreSQL database of their own, on the
// cluster started by tools/pg-start.sh (ACQUIT_TEST_PG_DSN).
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver
)

// EnvDSN is the environment variable holding the test cluster's DSN.
const EnvDSN = "ACQUIT_TEST_PG_DSN"

// BaseDSN returns ACQUIT_TEST_PG_DSN. When it is unset the test is skipped,
// except under CI=true where it fails: CI must exercise PostgreSQL.
func BaseDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set (CI=true): run eval \"$(tools/pg-start.sh)\"", EnvDSN)
		}
		t.Skipf("%s is not set; run eval \"$(tools/pg-start.sh)\" to test against PostgreSQL", EnvDSN)
	}
	return dsn
}

// DSN returns a DSN whose search_path is a fresh schema created for this
// test and dropped when it ends, so tests never see each other's tables.
// Without ACQUIT_TEST_PG_DSN it skips (or fails under CI=true).
func DSN(t testing.TB) string {
	t.Helper()
	base := BaseDSN(t)
	var rb [6]byte
	if _, err := rand.Read(rb[:]); err != nil {
		t.Fatal(err)
	}
	schema := "t_" + hex.EncodeToString(rb[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("pgtest: open %s: %v", EnvDSN, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", base)
		if err != nil {
			t.Errorf("pgtest: cleanup: %v", err)
			return
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(base, schema)
}

// WithSearchPath returns dsn with its search_path set to schema.
func WithSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " search_path=" + schema
}
