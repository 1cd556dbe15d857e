// Package dashboard is acquit's web dashboard, served by the admin listener
// under /ui/: what needs a person now, payments with their timelines,
// transmissions with their acknowledgements, events (replay of dead ones),
// schedules ("run now") and plugins.
//
// Pages are rendered on the server with html/template (every value is
// escaped for its context); a small embedded script refreshes the overview
// and submits filter forms. Every asset is embedded in the binary: no CDN,
// no build step. Responses carry a Content-Security-Policy that allows
// scripts and styles from the dashboard itself only.
//
// Authentication is the admin token: either sent as "Authorization: Bearer"
// (scripts, curl), or typed once in the login form, which opens a session
// held in this process's memory and sets a cookie (HttpOnly, Secure,
// SameSite=Strict, Path=/ui/). A request that changes something (replay,
// run now, logout) is a POST; with a session cookie it must carry the
// session's CSRF token and, when the browser sends an Origin header, come
// from the dashboard's own origin. Each refusal is logged and counted in
// acquit_dashboard_refusals_total{reason}.
//
// The dashboard reads through the same services as the admin API
// (payments.Service, transmissions.Service, the store's outbox and run
// records, the scheduler, the plugin manager): it has no SQL of its own.
package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/daemon/pluginhost"
	"github.com/acquit/acquit/daemon/schedule"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/transmissions"
)

// Prefix is the path the dashboard is served under.
const Prefix = "/ui/"

// CSP is the Content-Security-Policy of every dashboard response: scripts,
// styles and images from the dashboard only, no inline script, no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

const (
	cookieName = "acquit_session"
	csrfField  = "csrf"
	maxSession = 1000
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Scheduler is what the dashboard needs of the schedules
// (*schedule.Scheduler).
type Scheduler interface {
	List(ctx context.Context) ([]schedule.Info, error)
	RunNow(ctx context.Context, name string) (*store.Run, error)
}

// Deps are the dashboard's collaborators; nil Payments, Transmissions,
// Schedules or Plugins hide their pages' data (the feature is not
// configured).
type Deps struct {
	// Token is the admin token (required).
	Token string
	// Store gives the outbox, schedule runs and raw inputs.
	Store         store.Store
	Payments      *payments.Service
	Transmissions *transmissions.Service
	Schedules     Scheduler
	Plugins       func() []pluginhost.Status
	// Replay puts a dead event back in the queue (the admin API's replay:
	// store.ReplayEvent and a wake of the dispatcher).
	Replay func(ctx context.Context, id string) (*store.Event, error)
	// Location is the time zone times are shown in (nil: time.Local).
	Location *time.Location
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// Instance is shown in the header.
	Instance   string
	Logger     zerolog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Dashboard is the http.Handler of /ui/.
type Dashboard struct {
	d Deps
	// pages are the parsed page templates, parsed at the first render:
	// they are embedded (a parse error is a build defect, which
	// TestPagesParse catches), and an idle daemon whose dashboard nobody
	// opens then holds neither the parsed trees (about 0.65 MB of heap)
	// nor html/template's parser in memory (issue 12, idle daemon).
	pages    func() (map[string]*template.Template, error)
	mux      *http.ServeMux
	refusals *prometheus.CounterVec
	log      zerolog.Logger

	mu       sync.Mutex
	sessions map[string]*session // by sha256 of the cookie value
	failures []time.Time         // failed logins in the last loginWindow
}

// Failed logins are throttled: after maxFailures within loginWindow, every
// login attempt is refused (429) until the window has passed. The bearer
// token keeps working.
const (
	maxFailures = 10
	loginWindow = time.Minute
)

// throttled reports whether logins are refused now; failed records a
// failed attempt.
func (db *Dashboard) throttled(failed bool) bool {
	now := db.d.Now()
	db.mu.Lock()
	defer db.mu.Unlock()
	keep := db.failures[:0]
	for _, at := range db.failures {
		if now.Sub(at) < loginWindow {
			keep = append(keep, at)
		}
	}
	db.failures = keep
	if failed {
		db.failures = append(db.failures, now)
	}
	return len(db.failures) >= maxFailures
}

type session struct {
	csrf    string
	expires time.Time
}

// New builds the dashboard.
func New(d Deps) (*Dashboard, error) {
	if d.Token == "" {
		return nil, errors.New("dashboard: the admin token is required")
	}
	if d.Store == nil {
		return nil, errors.New("dashboard: a store is required")
	}
	if d.Location == nil {
		d.Location = time.Local
	}
	if d.SessionTTL <= 0 {
		d.SessionTTL = 12 * time.Hour
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	db := &Dashboard{d: d, sessions: map[string]*session{}, log: d.Logger.With().Str("component", "dashboard").Logger()}
	db.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acquit_dashboard_refusals_total",
		Help: "Dashboard requests refused, by reason (no_session, bad_token, bad_csrf, bad_origin, bad_request, throttled).",
	}, []string{"reason"})
	if d.Registerer != nil {
		if err := d.Registerer.Register(db.refusals); err != nil {
			return nil, fmt.Errorf("dashboard metrics: %w", err)
		}
	}
	loc := d.Location
	db.pages = sync.OnceValues(func() (map[string]*template.Template, error) { return parsePages(loc) })
	db.routes()
	return db, nil
}

func (db *Dashboard) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFiles, "static")
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", staticHandler(http.FileServerFS(static))))
	m.HandleFunc("GET /ui/login", db.loginPage)
	m.HandleFunc("POST /ui/login", db.login)
	auth := func(pattern string, h http.HandlerFunc) { m.Handle(pattern, db.authed(h)) }
	auth("POST /ui/logout", db.logout)
	auth("GET /ui/{$}", db.overview)
	auth("GET /ui/payments", db.paymentList)
	auth("GET /ui/payments/{ref}", db.paymentPage)
	auth("GET /ui/raw/{id}", db.rawDownload)
	auth("GET /ui/transmissions", db.transmissionList)
	auth("GET /ui/transmissions/{id}", db.transmissionPage)
	auth("GET /ui/transmissions/{id}/file", db.transmissionFile)
	auth("GET /ui/transmissions/{id}/acks/{ack}", db.ackDownload)
	auth("GET /ui/events", db.eventList)
	auth("GET /ui/events/{id}", db.eventPage)
	auth("POST /ui/events/{id}/replay", db.replay)
	auth("GET /ui/schedules", db.scheduleList)
	auth("POST /ui/schedules/{name}/run", db.runNow)
	auth("GET /ui/plugins", db.pluginList)
	db.mux = m
}

// ServeHTTP serves /ui/ with the security headers on every response.
func (db *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // not no-referrer: Chromium then sends "Origin: null" with our own forms
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
		h.Set("Cache-Control", "no-store")
	}
	db.mux.ServeHTTP(w, r)
}

func staticHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		h.ServeHTTP(w, r)
	})
}

// ctxKey carries the request's session (nil for bearer-token requests).
type ctxKey struct{}

func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(ctxKey{}).(*session)
	return s
}

func (db *Dashboard) refuse(w http.ResponseWriter, r *http.Request, code int, reason, msg string) {
	db.refusals.WithLabelValues(reason).Inc()
	db.log.Warn().Str("reason", reason).Str("method", r.Method).Str("path", r.URL.Path).Str("remote", r.RemoteAddr).
		Msg("dashboard request refused")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}

func (db *Dashboard) tokenOK(got string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(db.d.Token)) == 1
}

// authed admits a request with the bearer token or a live session; a POST
// with a session must also pass the CSRF and origin checks.
func (db *Dashboard) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			if !db.tokenOK(got) {
				db.refuse(w, r, http.StatusUnauthorized, "bad_token", "wrong bearer token")
				return
			}
			h(w, r)
			return
		}
		s := db.lookup(r)
		if s == nil {
			if r.Method == http.MethodGet {
				db.refusals.WithLabelValues("no_session").Inc()
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			db.refuse(w, r, http.StatusUnauthorized, "no_session", "not logged in")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !sameOrigin(r) {
				db.refuse(w, r, http.StatusForbidden, "bad_origin", "cross-origin request refused")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue(csrfField)), []byte(s.csrf)) != 1 {
				db.refuse(w, r, http.StatusForbidden, "bad_csrf", "missing or wrong CSRF token: reload the page and try again")
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	})
}

// sameOrigin accepts a request whose Origin (or, without one, Referer) is
// the dashboard's own; a request with neither is accepted (the CSRF token
// decides).
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" || src == "null" {
		if src == "null" {
			return false
		}
		ref := r.Header.Get("Referer")
		if ref == "" {
			return true
		}
		src = ref
	}
	u, err := url.Parse(src)
	if err != nil {
		return false
	}
	return u.Host == r.Host
}

func hashID(v string) string {
	s := sha256.Sum256([]byte(v))
	return hex.EncodeToString(s[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (db *Dashboard) lookup(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil || len(c.Value) != 64 {
		return nil
	}
	key := hashID(c.Value)
	db.mu.Lock()
	defer db.mu.Unlock()
	s := db.sessions[key]
	if s == nil {
		return nil
	}
	if db.d.Now().After(s.expires) {
		delete(db.sessions, key)
		return nil
	}
	return s
}

// open starts a session and returns the cookie value.
func (db *Dashboard) open() string {
	id := randomHex(32)
	now := db.d.Now()
	db.mu.Lock()
	defer db.mu.Unlock()
	for k, s := range db.sessions {
		if now.After(s.expires) {
			delete(db.sessions, k)
		}
	}
	if len(db.sessions) >= maxSession {
		// Drop the session closest to its end.
		var oldest string
		for k, s := range db.sessions {
			if oldest == "" || s.expires.Before(db.sessions[oldest].expires) {
				oldest = k
			}
		}
		delete(db.sessions, oldest)
	}
	db.sessions[hashID(id)] = &session{csrf: randomHex(32), expires: now.Add(db.d.SessionTTL)}
	return id
}

func (db *Dashboard) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// safeNext keeps a post-login redirect inside the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

func (db *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if db.lookup(r) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	db.render(w, r, http.StatusOK, "login", &view{Title: "Log in", Data: map[string]string{"Next": safeNext(r.URL.Query().Get("next"))}})
}

func (db *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		db.refuse(w, r, http.StatusForbidden, "bad_origin", "cross-origin request refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	next := safeNext(r.PostFormValue("next"))
	if db.throttled(false) {
		db.refuse(w, r, http.StatusTooManyRequests, "throttled", "too many failed logins: wait a minute")
		return
	}
	if !db.tokenOK(strings.TrimSpace(r.PostFormValue("token"))) {
		db.throttled(true)
		db.refusals.WithLabelValues("bad_token").Inc()
		db.log.Warn().Str("reason", "bad_token").Str("remote", r.RemoteAddr).Msg("dashboard login refused")
		db.render(w, r, http.StatusUnauthorized, "login", &view{Title: "Log in",
			Data: map[string]string{"Next": next, "Error": "Wrong token."}})
		return
	}
	db.setCookie(w, db.open(), int(db.d.SessionTTL/time.Second))
	db.log.Info().Str("remote", r.RemoteAddr).Msg("dashboard login")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (db *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName); err == nil {
		db.mu.Lock()
		delete(db.sessions, hashID(c.Value))
		db.mu.Unlock()
	}
	db.setCookie(w, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
