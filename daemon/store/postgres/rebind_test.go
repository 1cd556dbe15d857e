package postgres

import "testing"

func TestRebind(t *testing.T) {
	cases := []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT * FROM t WHERE a = ? AND b = ?`, `SELECT * FROM t WHERE a = $1 AND b = $2`},
		{`SELECT '?' , ? FROM t`, `SELECT '?' , $1 FROM t`},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{`SELECT "we?ird", ?`, `SELECT "we?ird", $1`},
		{`SELECT E'a\'?', ?`, `SELECT E'a\'?', $1`},
		{"SELECT ? -- what?\n, ?", "SELECT $1 -- what?\n, $2"},
		{`SELECT ? /* a ? b */ , ?`, `SELECT $1 /* a ? b */ , $2`},
		{`SELECT $$ ? $$, ?`, `SELECT $$ ? $$, $1`},
		{`SELECT $tag$ it's ? $tag$, ?`, `SELECT $tag$ it's ? $tag$, $1`},
		{`SELECT data ?? 'key', ?`, `SELECT data ? 'key', $1`},
		{`SELECT $1, ?`, `SELECT $1, $1`}, // mixing styles is the caller's problem, but nothing breaks
		{`SELECT 'unterminated ?`, `SELECT 'unterminated ?`},
		{`SELECT ?`, `SELECT $1`},
		{`?,?,?,?,?,?,?,?,?,?,?`, `$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11`},
	}
	for _, c := range cases {
		if got := Rebind(c.in); got != c.want {
			t.Errorf("Rebind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzRebind(f *testing.F) {
	for _, s := range []string{`SELECT ? '?' "?" -- ?`, `$$?$$ ?`, `/* ? */ ??`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Rebind(s)
		if len(out) < len(s)-countQQ(s) {
			t.Fatalf("Rebind lost text: %q -> %q", s, out)
		}
	})
}

func countQQ(s string) int {
	n := 0
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '?' && s[i+1] == '?' {
			n++
			i++
		}
	}
	return n
}
