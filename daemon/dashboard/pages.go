package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/daemon/pluginhost"
	"github.com/acquit/acquit/daemon/schedule"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/transmissions"
)

// view is what every page template receives.
type view struct {
	Title    string
	Nav      string
	CSRF     string
	Flash    string
	FlashBad bool
	Instance string
	Zone     string
	Now      time.Time
	Refresh  int // seconds; 0 = no live refresh
	Data     any
}

func parsePages(loc *time.Location) (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" || base == "partials" {
			continue
		}
		t, err := template.New(base).Funcs(funcs(loc)).ParseFS(templateFiles, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("dashboard template %s: %w", n, err)
		}
		out[base] = t
	}
	return out, nil
}

func (db *Dashboard) render(w http.ResponseWriter, r *http.Request, code int, page string, v *view) {
	if s := sessionOf(r); s != nil {
		v.CSRF = s.csrf
	}
	v.Instance, v.Now = db.d.Instance, db.d.Now()
	v.Zone = db.d.Location.String()
	if v.Flash == "" {
		v.Flash, v.FlashBad = flashText(r.URL.Query())
	}
	pages, err := db.pages()
	if err != nil {
		db.log.Error().Err(err).Str("page", page).Msg("dashboard templates failed to parse")
		http.Error(w, "page failed to render (see the daemon log)", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := pages[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		db.log.Error().Err(err).Str("page", page).Msg("dashboard page failed to render")
		http.Error(w, "page failed to render (see the daemon log)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page: the store or a service failed.
func (db *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	msg := "The daemon could not answer (see its log)."
	var ve *payments.ValidationError
	switch {
	case errors.Is(err, store.ErrNotFound):
		code, msg = http.StatusNotFound, "Not found."
	case errors.As(err, &ve):
		code, msg = http.StatusBadRequest, ve.Error()
		db.refusals.WithLabelValues("bad_request").Inc()
	default:
		db.log.Error().Err(err).Str("path", r.URL.Path).Msg("dashboard page failed")
	}
	db.render(w, r, code, "error", &view{Title: "Error", Data: msg})
}

// flashes are the messages a POST's redirect may show (?flash=code): a
// fixed set, so a link cannot put words on the page.
var flashes = map[string]struct {
	text string
	bad  bool
}{
	"replayed":    {"Event put back in the queue.", false},
	"replay_fail": {"The event could not be replayed (it may no longer be dead).", true},
	"run_ok":      {"Run finished: ok.", false},
	"run_failed":  {"Run finished: failed (see its error below).", true},
	"run_started": {"Run started; it is still going.", false},
	"run_busy":    {"A run of this schedule is already going.", true},
	"run_unknown": {"No such schedule.", true},
}

func flashText(q url.Values) (string, bool) {
	f, ok := flashes[q.Get("flash")]
	if !ok {
		return "", false
	}
	return f.text, f.bad
}

// ---------------------------------------------------------------------------
// overview

type count struct {
	Name  string
	N     int64
	Link  string
	Alarm bool
}

type overviewData struct {
	Payments, Transmissions, Events []count
	PluginsUp, PluginsTotal         int
	SchedulesOK, SchedulesTotal     int

	Unknown, Conflict, Mismatch []payments.Payment
	Troubled                    []transmissions.Transmission
	Unsent                      []transmissions.Transmission // queued past their deadline
	Dead                        []store.Event
	FailingSchedules            []schedule.Info
	PluginsDown                 []pluginhost.Status
	HasPayments, HasBanks       bool
	Quiet                       bool
}

var alarmTransmission = []transmissions.State{transmissions.StateRejected, transmissions.StatePartial,
	transmissions.StateUnacknowledged, transmissions.StateFailed}

var transmissionStates = []transmissions.State{transmissions.StateQueued, transmissions.StateSubmitted,
	transmissions.StateReceived, transmissions.StateSignatureVerified, transmissions.StateAccepted,
	transmissions.StatePartial, transmissions.StateRejected, transmissions.StateUnacknowledged, transmissions.StateFailed}

func (db *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var o overviewData
	if p := db.d.Payments; p != nil {
		o.HasPayments = true
		byState, err := p.CountByState(ctx)
		if err != nil {
			db.fail(w, r, err)
			return
		}
		for _, st := range payments.States() {
			o.Payments = append(o.Payments, count{Name: string(st), N: byState[st], Link: "/ui/payments?state=" + string(st),
				Alarm: st == payments.StateUnknown && byState[st] > 0})
		}
		for _, q := range []struct {
			f   payments.ListFilter
			out *[]payments.Payment
		}{
			{payments.ListFilter{State: payments.StateUnknown, Limit: 20}, &o.Unknown},
			{payments.ListFilter{Verdict: payments.VerdictConflict, Limit: 20}, &o.Conflict},
			{payments.ListFilter{Verdict: payments.VerdictMismatch, Limit: 20}, &o.Mismatch},
		} {
			if *q.out, err = p.List(ctx, q.f); err != nil {
				db.fail(w, r, err)
				return
			}
		}
	}
	if t := db.d.Transmissions; t != nil {
		o.HasBanks = true
		byState, err := t.CountByState(ctx)
		if err != nil {
			db.fail(w, r, err)
			return
		}
		for _, st := range transmissionStates {
			alarm := false
			for _, a := range alarmTransmission {
				alarm = alarm || (a == st && byState[st] > 0)
			}
			o.Transmissions = append(o.Transmissions, count{Name: string(st), N: byState[st], Link: "/ui/transmissions?state=" + string(st), Alarm: alarm})
		}
		for _, st := range alarmTransmission {
			ts, err := t.List(ctx, string(st), 20)
			if err != nil {
				db.fail(w, r, err)
				return
			}
			o.Troubled = append(o.Troubled, ts...)
		}
		sort.SliceStable(o.Troubled, func(i, j int) bool { return o.Troubled[i].UpdatedAt.After(o.Troubled[j].UpdatedAt) })
		if o.Unsent, err = t.Unsent(ctx, 20); err != nil {
			db.fail(w, r, err)
			return
		}
	}
	for _, st := range []store.EventState{store.EventPending, store.EventRunning, store.EventDelivered, store.EventDead} {
		n, err := db.d.Store.CountEvents(ctx, st)
		if err != nil {
			db.fail(w, r, err)
			return
		}
		o.Events = append(o.Events, count{Name: string(st), N: n, Link: "/ui/events?state=" + string(st), Alarm: st == store.EventDead && n > 0})
	}
	var err error
	if o.Dead, err = db.d.Store.ListEvents(ctx, store.EventFilter{State: store.EventDead, Limit: 20}); err != nil {
		db.fail(w, r, err)
		return
	}
	if db.d.Schedules != nil {
		ss, err := db.d.Schedules.List(ctx)
		if err != nil {
			db.fail(w, r, err)
			return
		}
		o.SchedulesTotal = len(ss)
		for _, s := range ss {
			if s.Last != nil && !s.Last.Finished.IsZero() && !s.Last.OK {
				o.FailingSchedules = append(o.FailingSchedules, s)
			} else {
				o.SchedulesOK++
			}
		}
	}
	if db.d.Plugins != nil {
		for _, p := range db.d.Plugins() {
			o.PluginsTotal++
			if p.State == pluginhost.StateUp {
				o.PluginsUp++
			} else {
				o.PluginsDown = append(o.PluginsDown, p)
			}
		}
	}
	o.Quiet = len(o.Unknown)+len(o.Conflict)+len(o.Mismatch)+len(o.Troubled)+len(o.Unsent)+len(o.Dead)+len(o.FailingSchedules)+len(o.PluginsDown) == 0
	db.render(w, r, http.StatusOK, "overview", &view{Title: "Overview", Nav: "overview", Refresh: 10, Data: &o})
}

// ---------------------------------------------------------------------------
// payments

type paymentListData struct {
	Filter   payments.ListFilter
	Limit    int
	States   []payments.State
	Verdicts []payments.Verdict
	Payments []payments.Payment
	Enabled  bool
}

func (db *Dashboard) paymentList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := paymentListData{States: payments.States(), Limit: 100,
		Verdicts: []payments.Verdict{payments.VerdictConflict, payments.VerdictMismatch, payments.VerdictNotFinal,
			payments.VerdictDuplicate, payments.VerdictRejected, payments.VerdictError}}
	d.Filter = payments.ListFilter{State: payments.State(q.Get("state")), Verdict: payments.Verdict(q.Get("verdict")),
		Gateway: strings.TrimSpace(q.Get("gateway")), OrderID: strings.TrimSpace(q.Get("order_id"))}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			db.fail(w, r, &payments.ValidationError{Field: "limit", Message: "must be 1..10000"})
			return
		}
		d.Limit = n
	}
	d.Filter.Limit = d.Limit
	if db.d.Payments != nil {
		d.Enabled = true
		var err error
		if d.Payments, err = db.d.Payments.List(r.Context(), d.Filter); err != nil {
			db.fail(w, r, err)
			return
		}
	}
	db.render(w, r, http.StatusOK, "payments", &view{Title: "Payments", Nav: "payments", Data: &d})
}

// entry is one line of a timeline: a response received, a state
// transition or an event raised.
type entry struct {
	At   time.Time
	Kind string // response, transition, event
	// Response
	Response *payments.Response
	Raw      *store.RawInput
	RawText  string
	RawCut   bool
	// Transition
	History *store.History
	// Event
	Event *store.Event
}

type paymentPageData struct {
	P        payments.Payment
	Timeline []entry
	// Attempts are every payment of the same order, oldest first.
	Attempts []payments.Payment
}

// rawShown is how much of a raw input is shown inline; the rest is in the
// download.
const rawShown = 16 << 10

func (db *Dashboard) rawEntry(ctx context.Context, id int64) (*store.RawInput, string, bool) {
	if id == 0 {
		return nil, "", false
	}
	raw, err := db.d.Store.GetRaw(ctx, id)
	if err != nil {
		return nil, "", false
	}
	body, cut := raw.Body, false
	if raw.Chunked {
		// A chunked body may be any size: read only what is shown.
		rc, _, err := db.d.Store.OpenRawBody(ctx, id)
		if err != nil {
			return raw, "", false
		}
		defer rc.Close()
		body, _ = io.ReadAll(io.LimitReader(rc, rawShown+1))
	}
	if len(body) > rawShown {
		body, cut = body[:rawShown], true
	}
	return raw, text(body), cut
}

func (db *Dashboard) subjectEvents(ctx context.Context, subject string) ([]store.Event, error) {
	return db.d.Store.ListEvents(ctx, store.EventFilter{Subject: subject, Limit: 1000})
}

func (db *Dashboard) paymentPage(w http.ResponseWriter, r *http.Request) {
	if db.d.Payments == nil {
		db.fail(w, r, store.ErrNotFound)
		return
	}
	ctx := r.Context()
	ref := r.PathValue("ref")
	det, err := db.d.Payments.Get(ctx, ref)
	if err != nil {
		db.fail(w, r, err)
		return
	}
	d := paymentPageData{P: det.Payment, Attempts: det.Attempts}
	for i := range det.Timeline {
		resp := &det.Timeline[i]
		e := entry{At: resp.At, Kind: "response", Response: resp}
		e.Raw, e.RawText, e.RawCut = db.rawEntry(ctx, resp.RawID)
		d.Timeline = append(d.Timeline, e)
	}
	hist, err := db.d.Payments.History(ctx, ref)
	if err != nil {
		db.fail(w, r, err)
		return
	}
	for i := range hist {
		d.Timeline = append(d.Timeline, entry{At: hist[i].At, Kind: "transition", History: &hist[i]})
	}
	evs, err := db.subjectEvents(ctx, "payment:"+det.Payment.Reference)
	if err != nil {
		db.fail(w, r, err)
		return
	}
	for i := range evs {
		d.Timeline = append(d.Timeline, entry{At: evs[i].CreatedAt, Kind: "event", Event: &evs[i]})
	}
	order := map[string]int{"response": 0, "transition": 1, "event": 2}
	sort.SliceStable(d.Timeline, func(i, j int) bool {
		a, b := d.Timeline[i], d.Timeline[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		return order[a.Kind] < order[b.Kind]
	})
	db.render(w, r, http.StatusOK, "payment", &view{Title: "Payment " + det.Payment.Reference, Nav: "payments", Data: &d})
}

// download sends b as an attachment named name.
func download(w http.ResponseWriter, name, ctype string, b []byte) {
	setAttachment(w, name, ctype, int64(len(b)))
	_, _ = w.Write(b)
}

func setAttachment(w http.ResponseWriter, name, ctype string, size int64) {
	if name == "" {
		name = "download"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
}

// downloadRaw streams the body of raw input id as an attachment, chunked
// or not, without holding it.
func (db *Dashboard) downloadRaw(w http.ResponseWriter, r *http.Request, id int64, name string) {
	rc, size, err := db.d.Store.OpenRawBody(r.Context(), id)
	if err != nil {
		db.fail(w, r, err)
		return
	}
	defer rc.Close()
	setAttachment(w, name, "application/octet-stream", size)
	if _, err := io.Copy(w, rc); err != nil {
		// Headers are sent: the client sees a short body (Content-Length).
		db.log.Warn().Err(err).Int64("raw_id", id).Msg("dashboard: raw body download cut")
	}
}

func (db *Dashboard) rawDownload(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		db.fail(w, r, store.ErrNotFound)
		return
	}
	raw, err := db.d.Store.GetRaw(r.Context(), id)
	if err != nil {
		db.fail(w, r, err)
		return
	}
	db.downloadRaw(w, r, raw.ID, fmt.Sprintf("raw-%d-%s-%s.bin", raw.ID, safeName(raw.Source), safeName(raw.Channel)))
}

// safeName keeps letters, digits, '.', '-' and '_' of a name for a file name.
func safeName(s string) string {
	b := []byte(s)
	out := b[:0]
	for _, c := range b {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' {
			out = append(out, c)
		}
	}
	if len(out) > 64 {
		out = out[:64]
	}
	return string(out)
}

// ---------------------------------------------------------------------------
// transmissions

// checkState refuses a state filter that is not one of states ("" = any).
func checkState[S ~string](what, v string, states []S) error {
	if v == "" || slices.Contains(states, S(v)) {
		return nil
	}
	return &payments.ValidationError{Field: "state", Message: fmt.Sprintf("unknown %s state %q", what, v)}
}

type transmissionListData struct {
	State         string
	States        []transmissions.State
	Transmissions []transmissions.Transmission
	Enabled       bool
}

func (db *Dashboard) transmissionList(w http.ResponseWriter, r *http.Request) {
	d := transmissionListData{State: r.URL.Query().Get("state"), States: transmissionStates}
	if err := checkState("transmission", d.State, transmissionStates); err != nil {
		db.fail(w, r, err)
		return
	}
	if db.d.Transmissions != nil {
		d.Enabled = true
		var err error
		if d.Transmissions, err = db.d.Transmissions.List(r.Context(), d.State, 200); err != nil {
			db.fail(w, r, err)
			return
		}
	}
	db.render(w, r, http.StatusOK, "transmissions", &view{Title: "Transmissions", Nav: "transmissions", Data: &d})
}

type transmissionPageData struct {
	T           transmissions.Detail
	Segments    any
	ReturnCode  string
	ReturnText  string
	RejectedN   int
	Acks        []transmissions.Ack
	Events      []store.Event
	FileOnDisk  bool
	DetailsJSON string
}

func (db *Dashboard) transmissionPage(w http.ResponseWriter, r *http.Request) {
	if db.d.Transmissions == nil {
		db.fail(w, r, store.ErrNotFound)
		return
	}
	ctx := r.Context()
	id := r.PathValue("id")
	det, err := db.d.Transmissions.Describe(ctx, id)
	if err != nil {
		db.fail(w, r, err)
		return
	}
	d := transmissionPageData{T: *det}
	var details map[string]any
	if json.Unmarshal(det.Details, &details) == nil {
		d.Segments = details["segments"]
		d.ReturnCode, _ = details["return_code"].(string)
		d.ReturnText, _ = details["return_text"].(string)
	}
	d.DetailsJSON = pretty(det.Details)
	for _, x := range det.Rejected {
		if x.Status == "RJCT" {
			d.RejectedN++
		}
	}
	if d.Acks, err = db.d.Transmissions.AcksOf(ctx, id); err != nil {
		db.fail(w, r, err)
		return
	}
	if d.Events, err = db.subjectEvents(ctx, "transmission:"+id); err != nil {
		db.fail(w, r, err)
		return
	}
	if fi, err := os.Stat(det.SpoolPath); err == nil && fi.Mode().IsRegular() {
		d.FileOnDisk = true
	}
	db.render(w, r, http.StatusOK, "transmission", &view{Title: "Transmission " + det.FileName, Nav: "transmissions", Data: &d})
}

func (db *Dashboard) transmissionFile(w http.ResponseWriter, r *http.Request) {
	if db.d.Transmissions == nil {
		db.fail(w, r, store.ErrNotFound)
		return
	}
	t, err := db.d.Transmissions.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		db.fail(w, r, err)
		return
	}
	b, err := os.ReadFile(t.SpoolPath)
	if err != nil {
		db.log.Warn().Err(err).Str("transmission", t.ID).Msg("original file not readable")
		db.render(w, r, http.StatusNotFound, "error", &view{Title: "Error",
			Data: "The original file is not in this instance's spool (another instance may hold it)."})
		return
	}
	download(w, t.FileName, "application/xml", b)
}

func (db *Dashboard) ackDownload(w http.ResponseWriter, r *http.Request) {
	if db.d.Transmissions == nil {
		db.fail(w, r, store.ErrNotFound)
		return
	}
	ctx := r.Context()
	acks, err := db.d.Transmissions.AcksOf(ctx, r.PathValue("id"))
	if err != nil {
		db.fail(w, r, err)
		return
	}
	for _, a := range acks {
		if a.ID != r.PathValue("ack") {
			continue
		}
		name := safeName(a.Name)
		if name == "" {
			name = safeName(a.Kind + "-" + a.ID)
		}
		db.downloadRaw(w, r, a.RawID, name)
		return
	}
	db.fail(w, r, store.ErrNotFound)
}

// ---------------------------------------------------------------------------
// events

type eventListData struct {
	State, Type, Subject string
	States               []store.EventState
	Events               []store.Event
}

func (db *Dashboard) eventList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := eventListData{State: q.Get("state"), Type: strings.TrimSpace(q.Get("type")), Subject: strings.TrimSpace(q.Get("subject")),
		States: []store.EventState{store.EventPending, store.EventRunning, store.EventDelivered, store.EventDead}}
	if err := checkState("event", d.State, d.States); err != nil {
		db.fail(w, r, err)
		return
	}
	// Newest first: the store lists by sequence, so read the newest page.
	evs, err := db.d.Store.ListEvents(r.Context(), store.EventFilter{State: store.EventState(d.State), Type: d.Type, Subject: d.Subject, Limit: 10000})
	if err != nil {
		db.fail(w, r, err)
		return
	}
	if len(evs) > 200 {
		evs = evs[len(evs)-200:]
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	d.Events = evs
	db.render(w, r, http.StatusOK, "events", &view{Title: "Events", Nav: "events", Data: &d})
}

type eventPageData struct {
	E        store.Event
	Attempts []store.Attempt
}

func (db *Dashboard) eventPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ev, err := db.d.Store.GetEvent(ctx, r.PathValue("id"))
	if err != nil {
		db.fail(w, r, err)
		return
	}
	atts, err := db.d.Store.EventAttempts(ctx, ev.ID)
	if err != nil {
		db.fail(w, r, err)
		return
	}
	db.render(w, r, http.StatusOK, "event", &view{Title: "Event " + ev.ID, Nav: "events", Data: &eventPageData{E: *ev, Attempts: atts}})
}

// back returns to the page the form was on (a dashboard path), else to def.
func back(r *http.Request, def, flash string) string {
	to := r.PostFormValue("back")
	if !strings.HasPrefix(to, Prefix) || strings.HasPrefix(to, "//") || strings.ContainsAny(to, "\\\r\n?#") {
		to = def
	}
	return to + "?flash=" + flash
}

func (db *Dashboard) replay(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if db.d.Replay == nil {
		db.fail(w, r, store.ErrNotFound)
		return
	}
	ev, err := db.d.Store.GetEvent(r.Context(), id)
	if err != nil {
		db.fail(w, r, err)
		return
	}
	flash := "replayed"
	if ev.State != store.EventDead {
		flash = "replay_fail"
	} else if _, err := db.d.Replay(r.Context(), id); err != nil {
		db.log.Warn().Err(err).Str("event", id).Msg("dashboard replay failed")
		flash = "replay_fail"
	} else {
		db.log.Info().Str("event", id).Str("type", ev.Type).Msg("dead event replayed from the dashboard")
	}
	http.Redirect(w, r, back(r, "/ui/events/"+url.PathEscape(id), flash), http.StatusSeeOther)
}

// ---------------------------------------------------------------------------
// schedules

type scheduleRow struct {
	schedule.Info
	Runs []store.Run
}

func (db *Dashboard) scheduleList(w http.ResponseWriter, r *http.Request) {
	var rows []scheduleRow
	if db.d.Schedules != nil {
		ss, err := db.d.Schedules.List(r.Context())
		if err != nil {
			db.fail(w, r, err)
			return
		}
		for _, s := range ss {
			runs, err := db.d.Store.ListRuns(r.Context(), s.Name, 5)
			if err != nil {
				db.fail(w, r, err)
				return
			}
			rows = append(rows, scheduleRow{Info: s, Runs: runs})
		}
	}
	db.render(w, r, http.StatusOK, "schedules", &view{Title: "Schedules", Nav: "schedules", Data: rows})
}

// runWait is how long "run now" waits for the run before answering.
const runWait = 3 * time.Second

func (db *Dashboard) runNow(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if db.d.Schedules == nil {
		http.Redirect(w, r, "/ui/schedules?flash=run_unknown", http.StatusSeeOther)
		return
	}
	type result struct {
		run *store.Run
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The run goes on if the browser leaves.
		run, err := db.d.Schedules.RunNow(context.WithoutCancel(r.Context()), name)
		done <- result{run, err}
	}()
	db.log.Info().Str("schedule", name).Msg("run requested from the dashboard")
	flash := "run_started"
	select {
	case res := <-done:
		switch {
		case errors.Is(res.err, store.ErrNotFound):
			flash = "run_unknown"
		case errors.Is(res.err, store.ErrConflict):
			flash = "run_busy"
		case res.err != nil || !res.run.OK:
			flash = "run_failed"
		default:
			flash = "run_ok"
		}
	case <-time.After(runWait):
	}
	http.Redirect(w, r, "/ui/schedules?flash="+flash, http.StatusSeeOther)
}

// ---------------------------------------------------------------------------
// plugins

func (db *Dashboard) pluginList(w http.ResponseWriter, r *http.Request) {
	var ps []pluginhost.Status
	if db.d.Plugins != nil {
		ps = db.d.Plugins()
	}
	db.render(w, r, http.StatusOK, "plugins", &view{Title: "Plugins", Nav: "plugins", Data: ps})
}
