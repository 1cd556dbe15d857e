package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/acquit/acquit/plugins/atos/sips"
)

// maxRequestBody bounds every request the simulator reads.
const maxRequestBody = 64 << 10

// Handler returns the simulator's routes (also usable without Start, e.g.
// in httptest.NewServer; URL() is then empty and redirection URLs are
// built from the request's Host).
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+sips.PathPaymentInitPost, s.handlePost)
	mux.HandleFunc("POST "+sips.PathPaymentInitJSON, s.handleJSONInit)
	mux.HandleFunc("POST /redirect", s.handleRedirect)
	mux.HandleFunc("GET /payment/{id}", s.handlePage)
	mux.HandleFunc("POST /payment/{id}", s.handleChoose)
	mux.HandleFunc("POST "+sips.PathGetTransactionData, s.handleOffice)
	mux.HandleFunc("GET /sim/faults", s.handleGetFaults)
	mux.HandleFunc("PUT /sim/faults", s.handlePutFaults)
	mux.HandleFunc("GET /sim/decided", s.handleDecided)
	mux.HandleFunc("GET /sim/stats", s.handleStats)
	mux.HandleFunc("POST /sim/returned/{id}", s.handleReturned)
	return mux
}

func (s *Sim) baseURL(r *http.Request) string {
	if s.base != "" {
		return s.base
	}
	return "http://" + r.Host
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		http.Error(w, "request too large or unreadable", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	return b, true
}

// handlePost is Paypage POST: check, record, show the payment page.
func (s *Sim) handlePost(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	t, err := s.acceptPost(body)
	if err != nil {
		s.refusePage(w, err)
		return
	}
	s.showPage(w, r, t, http.StatusOK)
}

func (s *Sim) acceptPost(body []byte) (*Transaction, error) {
	form, err := sips.ParsePostForm(body)
	if err != nil {
		return nil, refuse("30", "%v", err)
	}
	if !strings.HasPrefix(form.InterfaceVersion, "HP_") {
		return nil, refuse("30", "InterfaceVersion %q is not an HP_ version", form.InterfaceVersion)
	}
	data, err := form.DecodedData()
	if err != nil {
		return nil, refuse("30", "%v", err)
	}
	f, err := sips.ParseData(data)
	if err != nil {
		return nil, refuse("30", "%v", err)
	}
	m, ok := s.merchant[f["merchantId"]]
	if !ok {
		return nil, refuse("03", "merchantId %q is unknown", f["merchantId"])
	}
	key, ok := m.Keys[f["keyVersion"]]
	if !ok {
		return nil, refuse("34", "keyVersion %q is unknown for merchant %s", f["keyVersion"], m.ID)
	}
	alg := m.SealAlgorithm
	if form.SealAlgorithm != "" {
		if alg, err = sips.ParseSealAlgorithm(form.SealAlgorithm); err != nil {
			return nil, refuse("30", "%v", err)
		}
	}
	if !sips.CheckSeal(alg, form.Data, key, form.Seal) {
		return nil, refuse("34", "seal does not match")
	}
	return s.newTransaction(m, f["keyVersion"], alg, f, "post")
}

func (s *Sim) refusePage(w http.ResponseWriter, err error) {
	code, msg := "99", err.Error()
	var re *requestError
	if errors.As(err, &re) {
		code, msg = re.code, re.msg
	}
	s.mu.Lock()
	s.stats.Refused++
	s.mu.Unlock()
	s.log.Debug().Str("response_code", code).Str("reason", msg).Msg("request refused")
	w.Header().Set("X-Sips-Response-Code", code)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	errorTmpl.Execute(w, map[string]string{"Code": code, "Message": msg, "Description": sips.ResponseCodes[code].Description})
}

// handleJSONInit is Paypage JSON paymentInit.
func (s *Sim) handleJSONInit(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	flat, f, err := sips.FlattenJSON(body)
	if err != nil {
		writeJSON(w, map[string]any{"redirectionStatusCode": "30", "redirectionStatusMessage": err.Error()}, nil, "")
		return
	}
	m, ok := s.merchant[f["merchantId"]]
	if !ok {
		writeJSON(w, map[string]any{"redirectionStatusCode": "03", "redirectionStatusMessage": "unknown merchantId"}, nil, "")
		return
	}
	kv := f["keyVersion"]
	key, ok := m.Keys[kv]
	alg := sips.HMACSHA256
	if f["sealAlgorithm"] != "" {
		alg, err = sips.ParseSealAlgorithm(f["sealAlgorithm"])
	}
	if !ok || err != nil || !sips.CheckSeal(alg, flat, key, f["seal"]) {
		writeJSON(w, map[string]any{"redirectionStatusCode": "34", "redirectionStatusMessage": "seal or keyVersion invalid"}, nil, "")
		return
	}
	acc := &sips.Account{MerchantID: m.ID, Keys: m.Keys, Algorithm: alg}
	if !strings.HasPrefix(f["interfaceVersion"], "IR_WS_") {
		writeJSON(w, map[string]any{"redirectionStatusCode": "30", "redirectionStatusMessage": "interfaceVersion must be IR_WS_x"}, acc, kv)
		return
	}
	t, err := s.newTransaction(m, kv, alg, f, "json")
	if err != nil {
		var re *requestError
		code, msg := "99", err.Error()
		if errors.As(err, &re) {
			code, msg = re.code, re.msg
		}
		s.mu.Lock()
		s.stats.Refused++
		s.mu.Unlock()
		writeJSON(w, map[string]any{"redirectionStatusCode": code, "redirectionStatusMessage": msg}, acc, kv)
		return
	}
	token := newID() + newID()
	s.mu.Lock()
	s.byToken[token] = s.txs[t.ID]
	s.mu.Unlock()
	writeJSON(w, map[string]any{
		"redirectionStatusCode":    "00",
		"redirectionStatusMessage": "Success",
		"redirectionUrl":           s.baseURL(r) + "/redirect",
		"redirectionData":          token,
		"redirectionVersion":       "IR_WS_2.0",
	}, acc, kv)
}

// writeJSON answers msg, sealed when acc is set.
func writeJSON(w http.ResponseWriter, msg map[string]any, acc *sips.Account, keyVersion string) {
	var out []byte
	var err error
	if acc != nil {
		out, err = sips.MarshalSealed(msg, acc.Algorithm, keyVersion, acc.Keys[keyVersion])
	} else {
		out, err = json.Marshal(msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

// handleRedirect is where a JSON-mode browser lands with redirectionData.
func (s *Sim) handleRedirect(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	form, err := parseForm(body)
	if err != nil {
		s.refusePage(w, refuse("30", "%v", err))
		return
	}
	s.mu.Lock()
	t, ok := s.byToken[form.Get("redirectionData")]
	s.mu.Unlock()
	if !ok {
		s.refusePage(w, refuse("12", "redirectionData is unknown or expired"))
		return
	}
	s.showPage(w, r, t, http.StatusOK)
}

func (s *Sim) handlePage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	t, ok := s.txs[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.showPage(w, r, t, http.StatusOK)
}

func (s *Sim) showPage(w http.ResponseWriter, r *http.Request, t *Transaction, status int) {
	s.mu.Lock()
	tc := *t
	s.mu.Unlock()
	cur, _ := sips.CurrencyAlpha(tc.CurrencyCode)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Sim-Transaction", tc.ID)
	w.Header().Set("X-Sim-Payment-Page", s.baseURL(r)+"/payment/"+tc.ID)
	w.WriteHeader(status)
	pageTmpl.Execute(w, map[string]any{
		"ID": tc.ID, "Reference": tc.Reference(), "Merchant": tc.MerchantID,
		"Amount": fmt.Sprintf("%d.%02d", tc.Amount/100, tc.Amount%100), "Currency": cur, "Decided": tc.Decided,
	})
}

// handleChoose is the customer's choice on the payment page.
func (s *Sim) handleChoose(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	form, err := parseForm(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := r.PathValue("id")
	t, post, err := s.decide(id, Choice{Outcome: form.Get("outcome"), CardNumber: form.Get("cardNumber"), ResponseCode: form.Get("responseCode")})
	switch {
	case errors.Is(err, errAlreadyDecided):
		http.Error(w, "this payment was already made", http.StatusConflict)
		return
	case err != nil && t == nil && strings.HasPrefix(err.Error(), "no transaction"):
		http.NotFound(w, r)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Sim-Transaction", t.ID)
	w.Header().Set("X-Sips-Response-Code", t.ResponseCode)
	if post == nil {
		w.Header().Set("X-Sim-Manual", "none")
		closedTmpl.Execute(w, map[string]string{"Code": t.ResponseCode})
		return
	}
	w.Header().Set("X-Sim-Manual", "form")
	returnTmpl.Execute(w, map[string]any{
		"Action": t.NormalReturnURL, "Fields": post.Map(), "Code": t.ResponseCode,
		"Returned": s.baseURL(r) + "/sim/returned/" + t.ID,
	})
}

// handleOffice is Office getTransactionData.
func (s *Sim) handleOffice(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f := s.faults
	s.stats.OfficeQueries++
	if f.OfficeDown {
		s.stats.OfficeUnavailable++
	}
	s.mu.Unlock()
	if f.OfficeDelay > 0 {
		select {
		case <-time.After(f.OfficeDelay):
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		}
	}
	if f.OfficeDown {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	flat, fields, err := sips.FlattenJSON(body)
	if err != nil {
		writeJSON(w, map[string]any{"responseCode": "30"}, nil, "")
		return
	}
	m, ok := s.merchant[fields["merchantId"]]
	if !ok {
		writeJSON(w, map[string]any{"responseCode": "03"}, nil, "")
		return
	}
	kv := fields["keyVersion"]
	key, ok := m.Keys[kv]
	alg := sips.HMACSHA256
	if fields["sealAlgorithm"] != "" {
		alg, err = sips.ParseSealAlgorithm(fields["sealAlgorithm"])
	}
	if !ok || err != nil || !sips.CheckSeal(alg, flat, key, fields["seal"]) {
		writeJSON(w, map[string]any{"responseCode": "34"}, nil, "")
		return
	}
	acc := &sips.Account{MerchantID: m.ID, Keys: m.Keys, Algorithm: alg}
	if !strings.HasPrefix(fields["interfaceVersion"], "DR_WS_") {
		writeJSON(w, map[string]any{"responseCode": "30"}, acc, kv)
		return
	}
	ref, date := fields["transactionReference"], ""
	if ref == "" {
		ref, date = fields["s10TransactionReference.s10TransactionId"], fields["s10TransactionReference.s10TransactionIdDate"]
		if ref == "" {
			writeJSON(w, map[string]any{"responseCode": "12"}, acc, kv)
			return
		}
	}
	s.mu.Lock()
	injected := f.OfficeErrors[ref]
	if injected != "" {
		s.stats.OfficeErrors++
	}
	s.mu.Unlock()
	if injected != "" {
		writeJSON(w, map[string]any{"responseCode": injected}, acc, kv)
		return
	}
	s.mu.Lock()
	t, found := s.byRef[refKey(m.ID, ref, date)]
	var tc Transaction
	if found {
		tc = *t
	}
	if !found || tc.Status == "" {
		s.stats.OfficeNotFound++
	}
	s.mu.Unlock()
	if !found || tc.Status == "" {
		writeJSON(w, map[string]any{"responseCode": "25"}, acc, kv)
		return
	}
	out := map[string]any{
		"responseCode":            "00",
		"merchantId":              m.ID,
		"amount":                  fmt.Sprint(tc.Amount),
		"currencyCode":            tc.CurrencyCode,
		"transactionStatus":       tc.Status,
		"automaticResponseStatus": tc.AutomaticStatus,
		"transactionDateTime":     tc.DecidedAt.Format(time.RFC3339),
		"captureMode":             tc.CaptureMode,
	}
	if tc.TransactionReference != "" {
		out["transactionReference"] = tc.TransactionReference
	} else {
		out["s10TransactionReference"] = map[string]any{"s10TransactionId": tc.S10TransactionID, "s10TransactionIdDate": tc.S10TransactionIDDate}
	}
	if tc.AcquirerResponseCode != "" {
		out["acquirerResponseCode"] = tc.AcquirerResponseCode
	}
	if tc.AuthorisationID != "" {
		out["authorisationId"] = tc.AuthorisationID
	}
	writeJSON(w, out, acc, kv)
}

// FaultsJSON is the admin endpoint's form of Faults (durations as Go
// duration strings).
type FaultsJSON struct {
	DropAutomatic        float64 `json:"drop_automatic"`
	AutomaticDelay       string  `json:"automatic_delay,omitempty"`
	AutomaticTwice       float64 `json:"automatic_twice"`
	AutomaticAfterManual bool    `json:"automatic_after_manual"`
	CustomerNeverReturns float64 `json:"customer_never_returns"`
	OfficeDelay          string  `json:"office_delay,omitempty"`
	OfficeDown           bool    `json:"office_down"`
	// OfficeErrors: transaction reference -> Office responseCode answered.
	OfficeErrors map[string]string `json:"office_errors,omitempty"`
}

// ToJSON converts Faults for the admin endpoint.
func (f Faults) ToJSON() FaultsJSON {
	j := FaultsJSON{DropAutomatic: f.DropAutomatic, AutomaticTwice: f.AutomaticTwice, AutomaticAfterManual: f.AutomaticAfterManual,
		CustomerNeverReturns: f.CustomerNeverReturns, OfficeDown: f.OfficeDown, OfficeErrors: f.OfficeErrors}
	if f.AutomaticDelay > 0 {
		j.AutomaticDelay = f.AutomaticDelay.String()
	}
	if f.OfficeDelay > 0 {
		j.OfficeDelay = f.OfficeDelay.String()
	}
	return j
}

// Faults converts and validates the admin endpoint's form.
func (j FaultsJSON) Faults() (Faults, error) {
	f := Faults{DropAutomatic: j.DropAutomatic, AutomaticTwice: j.AutomaticTwice, AutomaticAfterManual: j.AutomaticAfterManual,
		CustomerNeverReturns: j.CustomerNeverReturns, OfficeDown: j.OfficeDown, OfficeErrors: j.OfficeErrors}
	for ref, code := range j.OfficeErrors {
		if ref == "" || len(code) != 2 || code[0] < '0' || code[0] > '9' || code[1] < '0' || code[1] > '9' {
			return Faults{}, fmt.Errorf("office_errors: %q: want a reference and a two-digit responseCode", ref)
		}
	}
	for _, p := range []float64{f.DropAutomatic, f.AutomaticTwice, f.CustomerNeverReturns} {
		if p < 0 || p > 1 {
			return Faults{}, fmt.Errorf("shares must be within 0..1")
		}
	}
	var err error
	if j.AutomaticDelay != "" {
		if f.AutomaticDelay, err = time.ParseDuration(j.AutomaticDelay); err != nil || f.AutomaticDelay < 0 {
			return Faults{}, fmt.Errorf("automatic_delay: bad duration %q", j.AutomaticDelay)
		}
	}
	if j.OfficeDelay != "" {
		if f.OfficeDelay, err = time.ParseDuration(j.OfficeDelay); err != nil || f.OfficeDelay < 0 {
			return Faults{}, fmt.Errorf("office_delay: bad duration %q", j.OfficeDelay)
		}
	}
	return f, nil
}

func (s *Sim) handleGetFaults(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.Faults().ToJSON())
}

func (s *Sim) handlePutFaults(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var j FaultsJSON
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		http.Error(w, "faults: "+err.Error(), http.StatusBadRequest)
		return
	}
	f, err := j.Faults()
	if err != nil {
		http.Error(w, "faults: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.SetFaults(f)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(f.ToJSON())
}

func (s *Sim) handleDecided(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.Decided())
}

func (s *Sim) handleStats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.Stats())
}

func (s *Sim) handleReturned(w http.ResponseWriter, r *http.Request) {
	if !s.markReturned(r.PathValue("id")) {
		http.NotFound(w, r)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

var errorTmpl = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Payment refused by Sips (simulator)</title></head>
<body><h1>Your payment request could not be processed</h1>
<p>responseCode <strong id="responseCode">{{.Code}}</strong>: {{.Description}}</p>
<p><small>{{.Message}}</small></p></body></html>
`))

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sips payment page (simulator)</title>
<style>body{font-family:sans-serif;max-width:32em;margin:2em auto}fieldset{margin:1em 0}button{margin:.2em}</style></head>
<body><h1>Pay {{.Amount}} {{.Currency}}</h1>
<p>Merchant {{.Merchant}}, reference <code>{{.Reference}}</code></p>
{{if .Decided}}<p>This payment was already made.</p>{{else}}
<form method="post" action="/payment/{{.ID}}" id="card">
<fieldset><legend>Card (simulation: the last two digits give the responseCode)</legend>
<label>Card number <input name="cardNumber" inputmode="numeric" value="4100000000000000" autocomplete="off"></label>
<button type="submit">Pay</button></fieldset></form>
<form method="post" action="/payment/{{.ID}}" id="outcome">
<fieldset><legend>Or choose the outcome</legend>
<button name="outcome" value="accepted">Accepted</button>
<button name="outcome" value="refused">Refused</button>
<button name="outcome" value="3ds_failure">3-D Secure failure</button>
<button name="outcome" value="pending">Pending</button>
<button name="outcome" value="cancelled">Cancel and return to the shop</button>
</fieldset></form>{{end}}
</body></html>
`))

var returnTmpl = template.Must(template.New("return").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Back to the shop</title></head>
<body onload="document.getElementById('manual').submit()">
<p>Payment finished (responseCode {{.Code}}). Returning to the shop…</p>
<form id="manual" method="post" action="{{.Action}}">
{{range $k, $v := .Fields}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<noscript><button type="submit">Return to the shop</button></noscript>
</form>
<script>navigator.sendBeacon && navigator.sendBeacon({{.Returned}});</script>
</body></html>
`))

var closedTmpl = template.Must(template.New("closed").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Payment finished</title></head>
<body><p>Payment finished (responseCode {{.Code}}). The simulated customer closed the browser here and never returns to the shop.</p></body></html>
`))
