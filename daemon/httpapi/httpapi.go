// Package httpapi runs acquit's two HTTP listeners: the public one, where
// banks and customers' browsers arrive, and the admin one (loopback or unix
// socket, bearer token) for the CLI, metrics and health probes.
package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// PublicOptions configures the public listener.
type PublicOptions struct {
	Addr              string
	MaxBodyBytes      int64
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// TrustedProxies are the networks whose X-Forwarded-For header is
	// believed when computing the client address.
	TrustedProxies []netip.Prefix
}

// AdminOptions configures the admin listener.
type AdminOptions struct {
	// Addr is "host:port" or "unix:/path/to/socket".
	Addr  string
	Token string
	// Dashboard, when set, is served under /ui/ with its own
	// authentication (bearer token or its login session); GET / redirects
	// to it.
	Dashboard http.Handler
}

// Listen opens a listener for addr ("unix:/path" or "host:port"). A stale
// unix socket file is removed first.
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(path)
		}
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		if err := os.Chmod(path, 0o660); err != nil {
			l.Close()
			return nil, fmt.Errorf("chmod %s: %w", path, err)
		}
		return l, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return l, nil
}

type ctxKey int

const clientIPKey ctxKey = 1

// ClientIP returns the client address computed by the public listener's
// trusted-proxy logic, or the connection's remote address.
func ClientIP(r *http.Request) string {
	if v, ok := r.Context().Value(clientIPKey).(string); ok {
		return v
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientAddr walks X-Forwarded-For from the right while the hop is a trusted
// proxy; the first untrusted address is the client.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	isTrusted := func(s string) bool {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return false
		}
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	if len(trusted) == 0 || !isTrusted(host) {
		return host
	}
	hops := []string{}
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, part := range strings.Split(h, ",") {
			if p := strings.TrimSpace(part); p != "" {
				hops = append(hops, p)
			}
		}
	}
	client := host
	for i := len(hops) - 1; i >= 0; i-- {
		if _, err := netip.ParseAddr(hops[i]); err != nil {
			break
		}
		client = hops[i]
		if !isTrusted(hops[i]) {
			break
		}
	}
	return client
}

// Metrics are the HTTP metrics of both listeners.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	tooLarge prometheus.Counter
}

// NewMetrics registers the HTTP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acquit_http_requests_total", Help: "HTTP requests by listener, route and status code.",
		}, []string{"listener", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "acquit_http_request_duration_seconds", Help: "HTTP request duration by listener and route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"listener", "route"}),
		tooLarge: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "acquit_http_body_too_large_total", Help: "Public requests refused because the body exceeded max_body_bytes.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.tooLarge)
	}
	return m
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int) { w.code = c; w.ResponseWriter.WriteHeader(c) }
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return w.ResponseWriter.Write(b)
}

// instrument wraps h with logging, metrics and panic recovery.
func instrument(listener string, h http.Handler, log zerolog.Logger, m *Metrics, pre func(*http.Request) *http.Request) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if pre != nil {
			r = pre(r)
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if rec := recover(); rec != nil {
				log.Error().Str("listener", listener).Str("path", r.URL.Path).Interface("panic", rec).Msg("http handler panicked")
				if sw.code == 0 {
					http.Error(sw, "internal error", http.StatusInternalServerError)
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			code := sw.code
			if code == 0 {
				code = 200
			}
			if m != nil {
				m.requests.WithLabelValues(listener, route, strconv.Itoa(code)).Inc()
				m.duration.WithLabelValues(listener, route).Observe(time.Since(start).Seconds())
			}
			log.Debug().Str("listener", listener).Str("method", r.Method).Str("path", r.URL.Path).
				Int("status", code).Str("client", ClientIP(r)).Dur("took", time.Since(start)).Msg("http request")
		}()
		h.ServeHTTP(sw, r)
	})
}

// NewPublicServer builds the public server around h: body size limit,
// timeouts, client address from trusted proxies, metrics, panic recovery.
func NewPublicServer(o PublicOptions, h http.Handler, log zerolog.Logger, m *Metrics) *http.Server {
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.MaxBodyBytes > 0 {
			if r.ContentLength > o.MaxBodyBytes {
				if m != nil {
					m.tooLarge.Inc()
				}
				log.Warn().Str("path", r.URL.Path).Int64("content_length", r.ContentLength).
					Str("client", ClientIP(r)).Msg("public request refused: body too large")
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, o.MaxBodyBytes)
		}
		h.ServeHTTP(w, r)
	})
	pre := func(r *http.Request) *http.Request {
		return r.WithContext(context.WithValue(r.Context(), clientIPKey, clientAddr(r, o.TrustedProxies)))
	}
	return &http.Server{
		Handler:           instrument("public", limited, log, m, pre),
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          nil,
	}
}

// Readiness is consulted by /readyz; nil means ready.
type Readiness func(ctx context.Context) error

// NewAdminServer builds the admin server: /healthz and /readyz without a
// token, everything else (including /metrics) behind the bearer token.
func NewAdminServer(o AdminOptions, api http.Handler, gatherer prometheus.Gatherer, ready Readiness, log zerolog.Logger, m *Metrics) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if ready != nil {
			if err := ready(ctx); err != nil {
				WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
				return
			}
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", RequireToken(o.Token, promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})))
	if o.Dashboard != nil {
		mux.Handle("/ui/", o.Dashboard)
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		})
	}
	mux.Handle("/", RequireToken(o.Token, api))
	return &http.Server{
		Handler:           instrument("admin", mux, log, m, nil),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
}

// RequireToken wraps h with bearer-token authentication (constant-time
// comparison). An empty token refuses everything.
func RequireToken(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token == "" || !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="acquit"`)
			WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// WriteJSON writes v as JSON with the status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError writes {"error": msg} with the status code.
func WriteError(w http.ResponseWriter, code int, err error) {
	WriteJSON(w, code, map[string]string{"error": err.Error()})
}

// Serve runs srv on l until it is shut down; http.ErrServerClosed is not an
// error.
func Serve(srv *http.Server, l net.Listener) error {
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Flag is a readiness flag set once the daemon has started.
type Flag struct{ v atomic.Bool }

// Set marks the flag.
func (f *Flag) Set(v bool) { f.v.Store(v) }

// Get reads the flag.
func (f *Flag) Get() bool { return f.v.Load() }

// DecodeJSON decodes a JSON request body of at most 1 MiB into v, refusing
// unknown fields.
func DecodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	return nil
}
