package cli

import (
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/acquit/acquit/daemon/pluginhost"
)

// pluginsCmd is `acquit plugins`: the running daemon's plugin processes
// (GET /v1/plugins).
func (r *root) pluginsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "plugins", Short: "Show the running daemon's plugins"}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List plugins with kind, version, health, pid and restarts", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ps []pluginhost.Status
			if _, err := r.get("/v1/plugins", &ps); err != nil {
				return err
			}
			if r.cf.json {
				return printJSON(cmd.OutOrStdout(), ps)
			}
			rows := make([][]string, 0, len(ps))
			for _, p := range ps {
				version, pid, since := p.Info.Version, "", ""
				if version == "" {
					version = "-"
				}
				if p.PID != 0 {
					pid = strconv.Itoa(p.PID)
				}
				if !p.Since.IsZero() {
					since = p.Since.Format(time.RFC3339)
				}
				rows = append(rows, []string{p.Name, string(p.Kind), version, string(p.State), pid, strconv.Itoa(p.Restarts), since, short(p.LastError, 80)})
			}
			printTable(cmd.OutOrStdout(), []string{"NAME", "KIND", "VERSION", "STATE", "PID", "RESTARTS", "SINCE", "LAST ERROR"}, rows)
			return nil
		},
	})
	return cmd
}
