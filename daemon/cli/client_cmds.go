package cli

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/acquit/acquit/daemon/adminclient"
	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/daemon/store"
)

// clientFlags are the flags of every command that talks to the daemon.
type clientFlags struct {
	addr      string
	tokenFile string
	json      bool
	tz        string
}

func (f *clientFlags) bind(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.addr, "admin", envOr("ACQUIT_ADMIN", ""), "admin API address (host:port or unix:/path); default from --config")
	cmd.PersistentFlags().StringVar(&f.tokenFile, "token-file", envOr("ACQUIT_ADMIN_TOKEN_FILE", ""), "file holding the admin bearer token (or set ACQUIT_ADMIN_TOKEN); default from --config")
	cmd.PersistentFlags().BoolVar(&f.json, "json", false, "print JSON instead of a table")
	cmd.PersistentFlags().StringVar(&f.tz, "tz", envOr("ACQUIT_TZ", ""), "time zone of the times printed (IANA name, e.g. Europe/Paris; default the system's, TZ)")
}

// loc is the operator's time zone for printed times: --tz, else the
// system's (TZ). An unknown name falls back to UTC with a warning.
func (r *root) loc() *time.Location {
	if r.cf.tz == "" {
		return time.Local
	}
	l, err := time.LoadLocation(r.cf.tz)
	if err != nil {
		fmt.Fprintf(os.Stderr, "acquit: --tz %q: %v; printing UTC\n", r.cf.tz, err)
		return time.UTC
	}
	return l
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// client builds the admin client from flags, environment, or the config file.
func (r *root) client() (*adminclient.Client, error) {
	addr, token := r.cf.addr, os.Getenv("ACQUIT_ADMIN_TOKEN")
	if r.cf.tokenFile != "" {
		b, err := os.ReadFile(r.cf.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if addr == "" || token == "" {
		a, t, err := adminFromConfig(r.configPath)
		if err != nil {
			return nil, fmt.Errorf("no --admin/--token-file given and %w", err)
		}
		if addr == "" {
			addr = a
		}
		if token == "" {
			token = t
		}
	}
	return adminclient.New(addr, token), nil
}

// get GETs path from the admin API into out and returns the raw answer.
func (r *root) get(path string, out any) ([]byte, error) {
	c, err := r.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := ctxTimeout()
	defer cancel()
	return c.Do(ctx, "GET", path, nil, out)
}

func ctxTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

func (r *root) eventsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "List, show and replay events of the running daemon"}
	var state, typ, subject string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List events (newest last)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if state != "" {
				q.Set("state", state)
			}
			if typ != "" {
				q.Set("type", typ)
			}
			if subject != "" {
				q.Set("subject", subject)
			}
			q.Set("limit", strconv.Itoa(limit))
			var evs []store.Event
			if _, err := r.get("/v1/events?"+q.Encode(), &evs); err != nil {
				return err
			}
			if r.cf.json {
				return printJSON(cmd.OutOrStdout(), evs)
			}
			rows := make([][]string, 0, len(evs))
			for _, e := range evs {
				rows = append(rows, []string{e.ID, e.Type, e.Subject, string(e.State), strconv.Itoa(e.Attempts),
					e.CreatedAt.In(r.loc()).Format(time.RFC3339), shortTail(e.LastError, 80)})
			}
			printTable(cmd.OutOrStdout(), []string{"ID", "TYPE", "SUBJECT", "STATE", "ATTEMPTS", "CREATED", "LAST ERROR"}, rows)
			return nil
		},
	}
	list.Flags().StringVar(&state, "state", "", "pending, running, delivered or dead")
	list.Flags().StringVar(&typ, "type", "", "event type, e.g. payment.accepted")
	list.Flags().StringVar(&subject, "subject", "", "subject (payment reference, transmission id)")
	list.Flags().IntVar(&limit, "limit", 100, "maximum number of events")
	show := &cobra.Command{
		Use: "show ID", Short: "Show one event with its payload and delivery attempts", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d httpapi.EventDetail
			if _, err := r.get("/v1/events/"+url.PathEscape(args[0]), &d); err != nil {
				return err
			}
			if r.cf.json {
				return printJSON(cmd.OutOrStdout(), d)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "id:        %s\ntype:      %s\nsubject:   %s\nstate:     %s\nattempts:  %d\ncreated:   %s\nnext:      %s\n",
				d.ID, d.Type, d.Subject, d.State, d.Attempts, d.CreatedAt.In(r.loc()).Format(time.RFC3339), d.NextAttempt.In(r.loc()).Format(time.RFC3339))
			if d.LastError != "" {
				fmt.Fprintf(w, "error:     %s\n", d.LastError)
			}
			fmt.Fprintf(w, "payload:   %s\n\n", string(d.Payload))
			rows := [][]string{}
			for _, a := range d.AttemptLog {
				rows = append(rows, []string{strconv.Itoa(a.N), a.Worker, a.Started.In(r.loc()).Format(time.RFC3339), a.Finished.Sub(a.Started).String(),
					strconv.FormatBool(a.OK), shortTail(a.Error, 80)})
			}
			printTable(w, []string{"N", "WORKER", "STARTED", "TOOK", "OK", "ERROR"}, rows)
			return nil
		},
	}
	replay := &cobra.Command{
		Use: "replay ID...", Short: "Put dead-lettered (or delivered) events back in the queue", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout()
			defer cancel()
			for _, id := range args {
				var ev store.Event
				if _, err := c.Do(ctx, "POST", "/v1/events/"+url.PathEscape(id)+"/replay", nil, &ev); err != nil {
					return fmt.Errorf("replay %s: %w", id, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", ev.ID, ev.Type, ev.State)
			}
			return nil
		},
	}
	cmd.AddCommand(list, show, replay, r.emitCmd())
	return cmd
}

func (r *root) schedulesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "schedules", Short: "Show the running daemon's schedules"}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List schedules with next run time and last outcome", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ss []httpapi.ScheduleInfo
			if _, err := r.get("/v1/schedules", &ss); err != nil {
				return err
			}
			if r.cf.json {
				return printJSON(cmd.OutOrStdout(), ss)
			}
			rows := [][]string{}
			for _, s := range ss {
				last := "never"
				if s.LastOK != nil {
					last = "ok"
					if !*s.LastOK {
						last = "failed: " + short(s.LastError, 50)
					}
				}
				if s.Running {
					last = "running"
				}
				rows = append(rows, []string{s.Name, s.Spec, s.TimeZone, s.Job, s.Next, s.LastStarted, last})
			}
			printTable(cmd.OutOrStdout(), []string{"NAME", "SPEC", "TZ", "JOB", "NEXT", "LAST RUN", "OUTCOME"}, rows)
			return nil
		},
	})
	return cmd
}

func (r *root) emitCmd() *cobra.Command {
	var subject, data string
	cmd := &cobra.Command{
		Use: "emit TYPE", Short: "Emit a custom.* or demo.* event to try hooks on the running daemon", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout()
			defer cancel()
			body := httpapi.EmitRequest{Type: args[0], Subject: subject, Data: []byte(data)}
			var ev store.Event
			if _, err := c.Do(ctx, "POST", "/v1/events", body, &ev); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", ev.ID, ev.Type, ev.Subject)
			return nil
		},
	}
	cmd.Flags().StringVar(&subject, "subject", "", "subject (ordering key); default the type")
	cmd.Flags().StringVar(&data, "data", "{}", "JSON payload")
	return cmd
}
