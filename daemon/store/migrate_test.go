package store_test

import (
	"errors"
	"os"
	"testing"
	"testing/fstest"

	"github.com/acquit/acquit/daemon/store"
)

func set(name, dir string, lo, hi int) store.MigrationSet {
	return store.MigrationSet{Name: name, FS: os.DirFS("testdata/" + dir), Min: lo, Max: hi}
}

func TestCollectMigrations(t *testing.T) {
	cases := []struct {
		name    string
		driver  string
		sets    []store.MigrationSet
		want    []int
		wantSQL map[int]string
		err     error
	}{
		{name: "sqlite picks its own files", driver: "sqlite", sets: []store.MigrationSet{set("payments", "good", 100, 199)},
			want: []int{100, 101, 102}, wantSQL: map[int]string{101: "CREATE INDEX payments_demo_amount ON payments_demo (amount);\n"}},
		{name: "postgres picks its own files", driver: "postgres", sets: []store.MigrationSet{set("payments", "good", 100, 199)},
			want: []int{100, 101, 102}, wantSQL: map[int]string{101: "CREATE INDEX payments_demo_amount ON payments_demo USING btree (amount);\n"}},
		{name: "file not following the naming rule", driver: "sqlite", sets: []store.MigrationSet{set("x", "badname", 100, 199)}, err: store.ErrInvalid},
		{name: "number outside the set's range", driver: "sqlite", sets: []store.MigrationSet{set("payments", "outofrange", 100, 199)}, err: store.ErrInvalid},
		{name: "number used twice", driver: "sqlite", sets: []store.MigrationSet{set("payments", "dup", 100, 199)}, err: store.ErrConflict},
		{name: "overlapping ranges", driver: "sqlite", sets: []store.MigrationSet{set("a", "good", 100, 199), set("b", "outofrange", 150, 299)}, err: store.ErrConflict},
		{name: "one version in two sets", driver: "sqlite", sets: []store.MigrationSet{set("a", "good", 100, 100), set("b", "good", 100, 100)}, err: store.ErrConflict},
		{name: "same name twice", driver: "sqlite", sets: []store.MigrationSet{set("a", "good", 100, 199), set("a", "outofrange", 200, 299)}, err: store.ErrConflict},
		{name: "inverted range", driver: "sqlite", sets: []store.MigrationSet{set("a", "good", 199, 100)}, err: store.ErrInvalid},
		{name: "no FS", driver: "sqlite", sets: []store.MigrationSet{{Name: "a", Min: 1, Max: 2}}, err: store.ErrInvalid},
		{name: "path traversal name is not a migration", driver: "sqlite", sets: []store.MigrationSet{{Name: "a", Min: 1, Max: 99,
			FS: fstest.MapFS{"001_x;DROP.sql": {Data: []byte("SELECT 1")}}}}, err: store.ErrInvalid},
		{name: "two sets merge in order", driver: "sqlite", sets: []store.MigrationSet{set("t", "outofrange", 200, 299), set("p", "good", 100, 199)},
			want: []int{100, 101, 102, 250}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := store.CollectMigrations(c.driver, c.sets)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var vs []int
			for _, m := range got {
				vs = append(vs, m.Version)
				if want, ok := c.wantSQL[m.Version]; ok && m.SQL != want {
					t.Errorf("%d: SQL = %q, want %q", m.Version, m.SQL, want)
				}
			}
			if len(vs) != len(c.want) {
				t.Fatalf("versions = %v, want %v", vs, c.want)
			}
			for i := range vs {
				if vs[i] != c.want[i] {
					t.Fatalf("versions = %v, want %v", vs, c.want)
				}
			}
		})
	}
}
