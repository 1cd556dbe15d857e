package pgtest

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestWithSearchPath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"postgres://u@127.0.0.1:54329/db?sslmode=disable", "postgres://u@127.0.0.1:54329/db?search_path=t_1&sslmode=disable"},
		{"postgresql://u@h/db", "postgresql://u@h/db?search_path=t_1"},
		{"host=127.0.0.1 dbname=db", "host=127.0.0.1 dbname=db search_path=t_1"},
	}
	for _, c := range cases {
		if got := WithSearchPath(c.in, "t_1"); got != c.want {
			t.Errorf("WithSearchPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestDSNWithoutDatabase checks the skip / fail rule in a child process
// with ACQUIT_TEST_PG_DSN unset.
func TestDSNWithoutDatabase(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "1" {
		DSN(t)
		t.Log("DSN returned")
		return
	}
	for _, c := range []struct {
		ci       string
		wantFail bool
		wantText string
	}{{"", false, "SKIP"}, {"true", true, "CI=true"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDSNWithoutDatabase$", "-test.v", "-test.count=1")
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, EnvDSN+"=") && !strings.HasPrefix(kv, "CI=") {
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, "PGTEST_CHILD=1", "CI="+c.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != c.wantFail || !strings.Contains(string(out), c.wantText) {
			t.Errorf("CI=%q: failed=%v, output:\n%s", c.ci, err != nil, out)
		}
	}
}

func TestDSNGivesAFreshSchema(t *testing.T) {
	a, b := DSN(t), DSN(t)
	if a == b {
		t.Fatal("same DSN twice")
	}
	db, err := sql.Open("pgx", a)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var schema string
	if err := db.QueryRowContext(context.Background(), "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(schema, "t_") || !strings.Contains(a, schema) {
		t.Fatalf("current_schema = %q for %s", schema, a)
	}
}
