package postgres_test

import (
	"context"
	"testing"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/postgres"
	"github.com/acquit/acquit/daemon/store/storetest"
	"github.com/acquit/acquit/internal/pgtest"
)

func openTemp(t *testing.T) store.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.DSN(t), store.WithoutRegisteredMigrations())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, openTemp) }
