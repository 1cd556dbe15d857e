package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
	"github.com/acquit/acquit/daemon/store/storetest"
)

func openTemp(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "acquit.db"), store.WithoutRegisteredMigrations())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, openTemp) }
