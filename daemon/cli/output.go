package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/acquit/acquit/internal/money"
)

// printTable writes rows as aligned columns under header.
func printTable(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// short cuts s to n runes with an ellipsis.
func short(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// shortTail keeps the last n runes of s: a wrapped error names its cause
// last, so that is the part worth keeping.
func shortTail(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

// decodeNumbers unmarshals JSON keeping numbers exact (json.Number).
func decodeNumbers(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// printMinorJSON prints v as JSON in which every object holding an integer
// "amount" beside a "currency" (a payment) names its minor units as such:
// "amount_minor": 1000, with "amount_major": "10.00" beside it. The admin
// API and Lua payloads keep "amount" (documented as minor units); what a
// person reads from the CLI says which unit it is.
func printMinorJSON(w io.Writer, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var generic any
	if err := decodeNumbers(raw, &generic); err != nil {
		return err
	}
	return printJSON(w, renameMinor(generic))
}

func renameMinor(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = renameMinor(e)
		}
		n, isNum := x["amount"].(json.Number)
		cur, hasCur := x["currency"].(string)
		if isNum && hasCur {
			if minor, err := n.Int64(); err == nil {
				delete(x, "amount")
				x["amount_minor"] = minor
				x["amount_major"] = money.Major(minor, cur)
			}
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = renameMinor(e)
		}
		return x
	}
	return v
}
