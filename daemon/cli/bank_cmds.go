package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/internal/money"
	"github.com/acquit/acquit/sdk"
)

// sumText is a transmission's control sum with its currency, for people.
func sumText(ctrlSum, currency string) string {
	if currency == "" {
		return money.FormatDecimal(ctrlSum, "") + " (several currencies)"
	}
	return money.FormatDecimal(ctrlSum, currency)
}

func transmissionStates() []string {
	out := make([]string, len(transmissions.States))
	for i, s := range transmissions.States {
		out[i] = string(s)
	}
	return out
}

func (r *root) paymentsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "payments", Short: "Card payments recorded by the running daemon"}
	var state string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List payments, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if state != "" {
				q.Set("state", state)
			}
			var ps []payments.Payment
			if _, err := r.get("/v1/payments?"+q.Encode(), &ps); err != nil {
				return err
			}
			if r.cf.json {
				return printMinorJSON(cmd.OutOrStdout(), ps)
			}
			rows := [][]string{}
			for _, p := range ps {
				rows = append(rows, []string{p.Reference, p.OrderID, money.Format(p.Amount, p.Currency), string(p.State),
					p.DecidedChannel, p.ResponseCode, p.CreatedAt.In(r.loc()).Format(time.RFC3339)})
			}
			printTable(cmd.OutOrStdout(), []string{"REFERENCE", "ORDER", "AMOUNT", "STATE", "DECIDED BY", "CODE", "CREATED"}, rows)
			return nil
		},
	}
	list.Flags().StringVar(&state, "state", "", "pending, accepted, refused, cancelled, failed, expired, unknown")
	list.Flags().IntVar(&limit, "limit", 100, "maximum number of payments")
	show := &cobra.Command{
		Use: "show REF", Short: "Show a payment with the timeline of every response received", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d payments.Detail
			raw, err := r.get("/v1/payments/"+url.PathEscape(args[0]), &d)
			if err != nil {
				return err
			}
			if r.cf.json {
				var v any
				if err := decodeNumbers(raw, &v); err != nil {
					return err
				}
				return printMinorJSON(cmd.OutOrStdout(), v)
			}
			p := d.Payment
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "reference:  %s\norder:      %s\namount:     %s\nstate:      %s\ndecided by: %s\n",
				p.Reference, p.OrderID, money.Format(p.Amount, p.Currency), p.State, decidedBy(p))
			if p.DecidedChannel != "" && p.Explanation != "" {
				fmt.Fprintf(w, "why:        %s\n", p.Explanation)
			}
			fmt.Fprintf(w, "created:    %s\n\n", p.CreatedAt.In(r.loc()).Format(time.RFC3339))
			rows := [][]string{}
			for _, x := range d.Timeline {
				rows = append(rows, []string{x.At.In(r.loc()).Format(time.RFC3339Nano), x.Channel, string(x.Verdict), x.Outcome, x.ResponseCode, strconv.FormatInt(x.RawID, 10), short(string(x.Details), 60)})
			}
			printTable(w, []string{"AT", "CHANNEL", "VERDICT", "OUTCOME", "CODE", "RAW", "DETAILS"}, rows)
			if len(d.Attempts) > 1 {
				fmt.Fprintf(w, "\nattempts of order %s:\n", p.OrderID)
				rows = rows[:0]
				for _, a := range d.Attempts {
					mark := ""
					if a.Reference == p.Reference {
						mark = "*"
					}
					rows = append(rows, []string{strconv.FormatInt(a.Attempt, 10) + mark, a.Reference, string(a.State),
						money.Format(a.Amount, a.Currency), a.CreatedAt.In(r.loc()).Format(time.RFC3339)})
				}
				printTable(w, []string{"#", "REFERENCE", "STATE", "AMOUNT", "CREATED"}, rows)
			}
			return nil
		},
	}
	cmd.AddCommand(list, show, r.paymentsStartCmd())
	return cmd
}

// paymentsStartCmd starts a payment as a shop does (POST /v1/payments), for
// trying acquit out and for shops that script it.
func (r *root) paymentsStartCmd() *cobra.Command {
	var req payments.StartRequest
	var amount, idemKey string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "start --order ID --amount 10.00 --currency EUR",
		Short: "Start a payment as a shop does (POST /v1/payments) and print where to send the customer",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			minor, err := money.ParseMajor(amount, req.Currency)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			req.Amount = minor
			c, err := r.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout()
			defer cancel()
			var st payments.Started
			raw, err := c.DoWithHeaders(ctx, "POST", "/v1/payments", map[string]string{"Idempotency-Key": idemKey}, req, &st)
			if err != nil {
				return err
			}
			if r.cf.json {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			if quiet {
				fmt.Fprintln(cmd.OutOrStdout(), st.Reference)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reference: %s\namount:    %s\nredirect:  %s %s\n", st.Reference,
				money.Format(req.Amount, req.Currency), st.Method, st.RedirectURL)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.OrderID, "order", "", "the shop's order id")
	f.StringVar(&amount, "amount", "", "amount in major units, e.g. 10.00")
	f.StringVar(&req.Currency, "currency", "EUR", "ISO 4217 code")
	f.StringVar(&req.SuccessURL, "success-url", "http://127.0.0.1:8092/paid", "where the customer lands after paying")
	f.StringVar(&req.FailureURL, "failure-url", "http://127.0.0.1:8092/not-paid", "where the customer lands otherwise")
	f.StringVar(&req.CustomerEmail, "email", "", "customer e-mail")
	f.StringVar(&req.CustomerID, "customer", "", "customer id")
	f.StringVar(&req.Gateway, "gateway", "", "payment gateway plugin (default payments.gateway)")
	f.StringVar(&req.Merchant, "merchant", "", "merchant account of the gateway (default its default)")
	f.StringVar(&idemKey, "idempotency-key", "", "Idempotency-Key header: retrying with the same key never starts a second payment")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the payment's reference")
	_ = cmd.MarkFlagRequired("order")
	_ = cmd.MarkFlagRequired("amount")
	return cmd
}

// decidedBy says which response decided a payment and with which codes:
// the channel, then the provider's response code and acquirer code that
// came with the deciding response. A reconciliation answer carries no
// response code of its own (Office's 00 only says it answered; the
// transaction's status is in the explanation), so none is shown for it.
func decidedBy(p payments.Payment) string {
	if p.DecidedChannel == "" {
		return "not decided"
	}
	var codes []string
	if p.ResponseCode != "" {
		codes = append(codes, "response code "+p.ResponseCode)
	}
	if p.AcquirerResponseCode != "" {
		codes = append(codes, "acquirer code "+p.AcquirerResponseCode)
	}
	if len(codes) == 0 {
		return p.DecidedChannel
	}
	return p.DecidedChannel + " (" + strings.Join(codes, ", ") + ")"
}

func (r *root) transmissionsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "transmissions", Short: "Files sent to banks and what the banks said"}
	var state string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List transmissions, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if state != "" {
				q.Set("state", state)
			}
			var ts []transmissions.Transmission
			if _, err := r.get("/v1/transmissions?"+q.Encode(), &ts); err != nil {
				return err
			}
			if r.cf.json {
				return printJSON(cmd.OutOrStdout(), ts)
			}
			rows := [][]string{}
			for _, t := range ts {
				rows = append(rows, []string{t.ID, t.Bank, t.OrderID, t.MsgID, strconv.FormatInt(t.NbOfTxs, 10), sumText(t.CtrlSum, t.Currency), string(t.State), t.CreatedAt.In(r.loc()).Format(time.RFC3339)})
			}
			printTable(cmd.OutOrStdout(), []string{"ID", "BANK", "ORDER", "MSGID", "TXS", "SUM", "STATE", "CREATED"}, rows)
			return nil
		},
	}
	list.Flags().StringVar(&state, "state", "", strings.Join(transmissionStates(), ", "))
	list.Flags().IntVar(&limit, "limit", 100, "maximum number of transmissions")
	show := &cobra.Command{
		Use: "show ID", Short: "Show a transmission with its history, acknowledgements and rejected transactions", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d transmissions.Detail
			raw, err := r.get("/v1/transmissions/"+url.PathEscape(args[0]), &d)
			if err != nil {
				return err
			}
			if r.cf.json {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "id:        %s\nbank:      %s (%s)\nfile:      %s (%d bytes, sha256 %s)\nmsg id:    %s, %d transactions, sum %s\norder id:  %s\nstate:     %s\n",
				d.ID, d.Bank, d.Function, d.FileName, d.Size, d.SHA256, d.MsgID, d.NbOfTxs, sumText(d.CtrlSum, d.Currency), d.OrderID, d.State)
			if !d.DeadlineAt.IsZero() {
				fmt.Fprintf(w, "deadline:  %s\n", d.DeadlineAt.In(r.loc()).Format(time.RFC3339))
			}
			if d.UploadAttempts > 0 || d.LastError != "" {
				fmt.Fprintf(w, "uploads:   %d attempt(s)", d.UploadAttempts)
				if d.LastError != "" {
					fmt.Fprintf(w, ", last error: %s", short(d.LastError, 200))
				}
				fmt.Fprintln(w)
			}
			fmt.Fprintln(w, "\nhistory:")
			rows := [][]string{}
			for _, h := range d.History {
				rows = append(rows, []string{h.At.In(r.loc()).Format(time.RFC3339), h.From, h.To, h.Cause})
			}
			printTable(w, []string{"AT", "FROM", "TO", "CAUSE"}, rows)
			if len(d.Acks) > 0 {
				fmt.Fprintln(w, "\nacknowledgements:")
				rows = rows[:0]
				for _, a := range d.Acks {
					rows = append(rows, []string{a.Kind, a.Level, a.Ref, a.Status, a.ReasonCode, short(a.ReasonText, 60)})
				}
				printTable(w, []string{"KIND", "LEVEL", "REF", "STATUS", "REASON", "TEXT"}, rows)
			}
			if len(d.Rejected) > 0 {
				fmt.Fprintln(w, "\ntransactions with a status:")
				rows = rows[:0]
				for _, x := range d.Rejected {
					rows = append(rows, []string{x.EndToEndID, money.FormatDecimal(x.Amount, x.Currency), x.Status, x.ReasonCode, short(x.ReasonText, 60)})
				}
				printTable(w, []string{"END TO END ID", "AMOUNT", "STATUS", "REASON", "TEXT"}, rows)
			}
			return nil
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

func (r *root) ebicsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ebics", Short: "EBICS: upload files, fetch acknowledgements, manage keys"}
	var bank, function string
	var noWait bool
	upload := &cobra.Command{
		Use: "upload FILE --bank NAME", Short: "Send a pain.001/pain.008 file to a bank (never twice)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			fi, _ := f.Stat()
			q := url.Values{"bank": {bank}, "function": {function}, "name": {filepath.Base(args[0])}, "wait": {strconv.FormatBool(!noWait)}, "progress": {"ndjson"}}
			ctx, cancel := context.WithTimeout(cmd.Context(), 6*time.Hour)
			defer cancel()
			// Stages, in bytes of the original file: 1/3 the file goes to
			// the daemon (which parses and records it), 2/3 the plugin
			// compresses and encrypts it, 3/3 segments go to the bank.
			var bar *progressbar.ProgressBar
			var body io.Reader = f
			if !r.cf.json && term.IsTerminal(int(os.Stderr.Fd())) {
				bar = progressbar.DefaultBytes(fi.Size(), "1/3 sending "+filepath.Base(args[0])+" to acquit")
				body = &barReader{r: f, bar: bar, done: "1/3 acquit parses and records the file"}
			}
			resp, err := c.Stream(ctx, "POST", "/v1/transmissions?"+q.Encode(), "application/xml", body)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			stage := ""
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			var final map[string]json.RawMessage
			for sc.Scan() {
				var line map[string]json.RawMessage
				if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
					continue
				}
				if _, ok := line["stage"]; ok {
					var p transmissions.UploadProgress
					_ = json.Unmarshal(sc.Bytes(), &p)
					if bar != nil {
						if p.Stage != stage {
							stage = p.Stage
							switch stage {
							case "encrypting":
								bar.Reset()
								bar.Describe("2/3 compressing and encrypting for " + bank)
							case "sending":
								bar.Reset()
								bar.Describe("3/3 sending segments to " + bank)
							}
						}
						bar.ChangeMax64(max(p.Size, 1))
						_ = bar.Set64(p.Bytes)
					}
					continue
				}
				final = line
			}
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(os.Stderr)
			}
			if final == nil {
				return fmt.Errorf("upload: no answer from the daemon (status %d)", resp.StatusCode)
			}
			if r.cf.json {
				return printJSON(cmd.OutOrStdout(), final)
			}
			var t transmissions.Transmission
			_ = json.Unmarshal(final["transmission"], &t)
			var existing bool
			_ = json.Unmarshal(final["existing"], &existing)
			note := ""
			if existing {
				note = " (this file was already recorded: not sent again)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\torder %s\t%s%s\n", t.ID, t.State, t.OrderID, t.MsgID, note)
			if e, ok := final["error"]; ok {
				var msg string
				_ = json.Unmarshal(e, &msg)
				return fmt.Errorf("upload not finished: %s (acquit retries it)", msg)
			}
			return nil
		},
	}
	upload.Flags().StringVar(&bank, "bank", "", "bank name from the configuration")
	upload.Flags().StringVar(&function, "function", "", "business function (sct, sdd; default the bank's)")
	upload.Flags().BoolVar(&noWait, "no-wait", false, "return once recorded; the daemon sends it in the background")
	_ = upload.MarkFlagRequired("bank")

	var from, to, kinds string
	fetch := &cobra.Command{
		Use: "fetch-acks --bank NAME", Short: "Download acknowledgements now (PSR, HAC, PTK as the bank offers)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"from": from, "to": to, "kinds": kinds} {
				if v != "" {
					q.Set(k, v)
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Minute)
			defer cancel()
			var out map[string]string
			_, err = c.Do(ctx, "POST", "/v1/banks/"+url.PathEscape(bank)+"/fetch-acks?"+q.Encode(), nil, &out)
			if out != nil && out["summary"] != "" {
				fmt.Fprintln(cmd.OutOrStdout(), strings.ReplaceAll(out["summary"], "; ", "\n"))
			}
			return err
		},
	}
	fetch.Flags().StringVar(&bank, "bank", "", "bank name from the configuration")
	fetch.Flags().StringVar(&from, "from", "", "start date YYYY-MM-DD (acknowledgements already received)")
	fetch.Flags().StringVar(&to, "to", "", "end date YYYY-MM-DD")
	fetch.Flags().StringVar(&kinds, "kinds", "", "comma-separated kinds (psr,hac,ptk); default the bank's")
	_ = fetch.MarkFlagRequired("bank")

	keys := &cobra.Command{Use: "keys", Short: "EBICS key management: init, letter, send, fetch-bank-keys, status"}
	var outDir string
	var params []string
	for _, action := range []struct {
		name  sdk.KeyAction
		short string
	}{
		{sdk.KeyInit, "Generate the signature (A005/A006), authentication (X002) and encryption (E002) keys"},
		{sdk.KeyLetter, "Write the initialisation letter (text and PDF) with the key hashes"},
		{sdk.KeySend, "Send INI and HIA to the bank"},
		{sdk.KeyFetchBankKeys, "Download the bank's keys (HPB) and check them against the hashes from the bank's letter"},
		{sdk.KeyStatus, "Show the subscriber's key and onboarding status"},
	} {
		keys.AddCommand(&cobra.Command{
			Use: string(action.name) + " --bank NAME", Short: action.short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := r.client()
				if err != nil {
					return err
				}
				p := map[string]string{}
				for _, kv := range params {
					k, v, _ := strings.Cut(kv, "=")
					p[k] = v
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
				defer cancel()
				var res sdk.KeyResult
				if _, err := c.Do(ctx, "POST", "/v1/banks/"+url.PathEscape(bank)+"/keys", sdk.KeyRequest{Bank: bank, Action: action.name, Params: p}, &res); err != nil {
					return err
				}
				if r.cf.json {
					return printJSON(cmd.OutOrStdout(), res)
				}
				if res.Text != "" {
					fmt.Fprintln(cmd.OutOrStdout(), res.Text)
				}
				names := make([]string, 0, len(res.Files))
				for n := range res.Files {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					path := filepath.Join(outDir, filepath.Base(n))
					if err := os.WriteFile(path, res.Files[n], 0o640); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", path)
				}
				if res.Status != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "status: %s\n", res.Status)
				}
				return nil
			},
		})
	}
	keys.PersistentFlags().StringVar(&bank, "bank", "", "bank name from the configuration")
	keys.PersistentFlags().StringVar(&outDir, "out", ".", "folder for files (letter PDF)")
	keys.PersistentFlags().StringArrayVar(&params, "param", nil, "extra parameter key=value (e.g. lang=fr)")
	cmd.AddCommand(upload, fetch, keys)
	return cmd
}

var _ = http.MethodPost

// barReader advances bar with the bytes read from r (the file streamed to
// the daemon) and describes the next stage once r is exhausted.
type barReader struct {
	r    io.Reader
	bar  *progressbar.ProgressBar
	done string
}

func (b *barReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	_ = b.bar.Add(n)
	if err == io.EOF {
		b.bar.Describe(b.done)
	}
	return n, err
}
