package server

import (
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/config"
)

// TestRestartNeeded: Reload warns that a restart is needed for every
// setting it does not apply. transmissions.max_document_size (read once by
// transmissions.New) and plugins[].max_procs (the process's environment)
// were changed in d.cfg, shown by the running configuration, without the
// warning, while the daemon kept the old values.
func TestRestartNeeded(t *testing.T) {
	base := func() *config.Config {
		return &config.Config{
			State:         config.State{RawRetention: 720 * time.Hour},
			Transmissions: config.Transmissions{MaxDocumentSize: 2 * config.GiB},
			Plugins:       []config.Plugin{{Name: "atos", Path: "/usr/lib/acquit/atos"}},
		}
	}
	for name, change := range map[string]func(c *config.Config){
		"max_document_size": func(c *config.Config) { c.Transmissions.MaxDocumentSize = 4 * config.GiB },
		"max_procs":         func(c *config.Config) { c.Plugins[0].MaxProcs = 1 },
		"plugin path":       func(c *config.Config) { c.Plugins[0].Path = "/opt/atos" },
	} {
		c := base()
		change(c)
		if !restartNeeded(base(), c) {
			t.Errorf("%s changed: no restart warning", name)
		}
	}
	c := base()
	c.State.RawRetention = 48 * time.Hour // applied at the next pruning run
	if restartNeeded(base(), c) {
		t.Error("raw_retention changed: restart warning, but it applies in place")
	}
	if restartNeeded(base(), base()) {
		t.Error("nothing changed: restart warning")
	}
}
