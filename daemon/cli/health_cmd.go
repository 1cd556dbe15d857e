package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func (r *root) healthCmd() *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Ask the running daemon whether it is ready (plugins up, store reachable)",
		Long: "Calls /readyz on the admin listener and prints the answer; exit 0 when ready, 1 when not.\n" +
			"--wait polls until the daemon is ready or the time is up (for scripts that start it).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			deadline := time.Now().Add(wait)
			for {
				ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
				var st map[string]string
				_, err = c.Do(ctx, "GET", "/readyz", nil, &st)
				cancel()
				if err == nil {
					fmt.Fprintln(cmd.OutOrStdout(), "ready")
					return nil
				}
				if time.Now().After(deadline) {
					return &exitError{code: 1, err: fmt.Errorf("not ready: %w", err)}
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(200 * time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "keep asking until ready or this long has passed (e.g. 30s)")
	return cmd
}
