// Package payments keeps acquit's card payments and decides each one's
// outcome exactly once, whatever reaches the daemon: the provider's
// server-to-server (automatic) response, the customer's browser coming back
// (manual response), both, in any order, concurrently, twice, or neither (then
// reconciliation asks the provider).
//
// Every notification is stored raw first (store.RecordRaw, committed), then
// verified by the gateway plugin, then applied in one transaction: a payment
// leaves a decidable state (pending, or unknown after the final deadline)
// through one conditional UPDATE ... WHERE state IN ('pending','unknown'),
// together with its history row and its event (payment.accepted, ...). Later
// responses with the same outcome are recorded as duplicates; a contradicting
// one raises payment.conflict (once per distinct contradicting outcome) and
// changes nothing.
//
// Decisions documented here:
//   - A provider NotFound answer at reconciliation (Sips 25: it never saw the
//     transaction, the customer abandoned before paying) moves the payment to
//     "expired" and emits payment.expired (not payment.cancelled: the
//     customer did not press cancel, and shops usually treat the two
//     differently).
//   - A payment in state "unknown" (past FinalDeadline) is still decidable: a
//     late verified final response or reconciliation answer decides it and
//     emits its usual event. payment.unknown is raised once, by the
//     pending -> unknown transition.
//   - The manual response ends in a 303 redirect: to the payment's success
//     URL when the payment is accepted (by this response or earlier), to its
//     failure URL otherwise. When the response is not final (such as Sips
//     60) and the payment still undecided, the customer gets the neutral
//     "payment being confirmed" page (HTTP 200), not the failure URL. When
//     the stored state cannot be read (DB slow or down) but the gateway
//     verified the response, the verified outcome chooses the URL if the
//     URLs can still be read (the neutral page if it is not final); when nothing
//     about the payment can be known (forged, unknown reference, DB down),
//     the browser goes to Config.FallbackReturnURL, or gets a neutral
//     "payment being confirmed" page (HTTP 200) when none is configured.
//   - Rejected notifications (forged seal, unknown key version, ...) carry no
//     trustworthy reference: they get a raw verdict but no payment_responses
//     row.
package payments

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/acquit/acquit/internal/promreg"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/pluginhost"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the package's schema (numbers 100-199, files under
// migrations/; times in Unix milliseconds, internal/unixms). Nothing
// applies it on import: whoever opens the store passes it
// (store.WithMigrations), as the daemon's composition root (daemon/server)
// does. A function, not a variable: no importer can swap the set.
func Migrations() store.MigrationSet {
	return store.MigrationSet{Name: "payments", FS: mustSub(migrationFiles, "migrations"), Min: 100, Max: 199}
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // dir is a constant embedded above
	}
	return sub
}

// State is where a payment is.
type State string

// Payment states.
const (
	StatePending   State = "pending"
	StateAccepted  State = "accepted"
	StateRefused   State = "refused"
	StateCancelled State = "cancelled"
	StateFailed    State = "failed"
	StateExpired   State = "expired"
	StateUnknown   State = "unknown" // undecided at the final deadline
)

// Decidable reports whether a response can still decide the payment.
func (s State) Decidable() bool { return s == StatePending || s == StateUnknown }

// Verdict classifies one response received about a payment.
type Verdict string

// Verdicts of the timeline (payment_responses.verdict) and of raw inputs.
const (
	VerdictDecided          Verdict = "decided"           // this response decided the payment
	VerdictDuplicate        Verdict = "duplicate"         // same outcome as already decided
	VerdictConflict         Verdict = "conflict"          // contradicts the decided outcome
	VerdictNotFinal         Verdict = "not_final"         // provider says ask later
	VerdictMismatch         Verdict = "mismatch"          // sealed, but merchant/amount/currency differ
	VerdictRejected         Verdict = "rejected"          // not trusted (seal, key version, ...)
	VerdictUnknownReference Verdict = "unknown_reference" // sealed, but names no payment of ours
	VerdictError            Verdict = "error"             // acquit could not process it (store, plugin)
	// VerdictOperation: the payment was already decided the same way and the
	// response reported a new status of a later operation on it (capture,
	// refund, cancellation of the authorisation).
	VerdictOperation Verdict = "operation"
)

// Config is the payment domain's configuration.
type Config struct {
	// DefaultGateway is used when a StartRequest names none.
	DefaultGateway string
	// ReconcileAfter is how long a payment stays pending before
	// reconciliation asks the provider (default 20m).
	ReconcileAfter time.Duration
	// RecheckEvery is the first delay before asking again about a payment
	// whose answer was not final; it doubles per check, up to 64x
	// (default 5m).
	RecheckEvery time.Duration
	// FinalDeadline is the age after which a still undecided payment moves
	// to "unknown" and raises payment.unknown (default 72h).
	FinalDeadline time.Duration
	// PublicBaseURL is the public listener's base URL as the provider sees
	// it, e.g. "https://pay.example.com"; the notification URLs are
	// PublicBaseURL + "/notify/{gateway}/automatic|manual".
	PublicBaseURL string
	// FallbackReturnURL is where a customer's browser goes when nothing is
	// known about the payment it returns from (optional).
	FallbackReturnURL string
	// MaxBodyBytes limits a notification's body (default 64 KiB).
	MaxBodyBytes int64
	// ManualTimeout bounds the work done before redirecting a returning
	// customer (default 5s).
	ManualTimeout time.Duration
	// AutomaticTimeout bounds the work done for an automatic response
	// (default 20s).
	AutomaticTimeout time.Duration
	// NotifyRate limits the notifications accepted from one client
	// address, per second (token bucket, burst NotifyBurst); past it the
	// request is answered 429 and not stored. 0 = no limit.
	NotifyRate float64
	// NotifyBurst is the bucket size of NotifyRate (default 100).
	NotifyBurst int
	// RefusedBodyKeep is how much of a body refused before verification
	// (oversized, not UTF-8: it cannot be the provider's) is kept in the
	// raw input (default 4 KiB; the refusal's verdict gives the full
	// size).
	RefusedBodyKeep int64
}

// Deps is what the Service needs.
type Deps struct {
	Store store.Store
	// Gateway returns the payment gateway plugin of that name; for a name
	// that is not a configured gateway, an error wrapping
	// ErrUnknownGateway (or pluginhost.ErrUnknownPlugin / ErrWrongKind).
	Gateway    func(name string) (sdk.PaymentGateway, error)
	Logger     zerolog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
	Now        func() time.Time      // nil: time.Now
	Config     Config
}

// Service is the payment domain.
type Service struct {
	st      store.Store
	gateway func(string) (sdk.PaymentGateway, error)
	log     zerolog.Logger
	now     func() time.Time
	cfg     Config
	m       *metrics
	limit   *clientLimiter
	// serialWriter: the store runs write transactions one at a time
	// (store.Store.SerialWrites: SQLite), so a row read inside one is
	// current until it returns.
	serialWriter bool
}

// New builds a Service; defaults fill unset Config durations.
func New(deps Deps) *Service {
	c := deps.Config
	if c.ReconcileAfter <= 0 {
		c.ReconcileAfter = 20 * time.Minute
	}
	if c.RecheckEvery <= 0 {
		c.RecheckEvery = 5 * time.Minute
	}
	if c.FinalDeadline <= 0 {
		c.FinalDeadline = 72 * time.Hour
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.ManualTimeout <= 0 {
		c.ManualTimeout = 5 * time.Second
	}
	if c.AutomaticTimeout <= 0 {
		c.AutomaticTimeout = 20 * time.Second
	}
	if c.NotifyBurst <= 0 {
		c.NotifyBurst = 100
	}
	if c.RefusedBodyKeep <= 0 {
		c.RefusedBodyKeep = 4 << 10
	}
	c.PublicBaseURL = strings.TrimRight(c.PublicBaseURL, "/")
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	gw := deps.Gateway
	if gw == nil {
		gw = func(name string) (sdk.PaymentGateway, error) {
			return nil, fmt.Errorf("payment gateway %q: no gateways configured: %w", name, ErrUnknownGateway)
		}
	}
	return &Service{
		st:      deps.Store,
		gateway: gw,
		log:     deps.Logger.With().Str("component", "payments").Logger(),
		now:     now,
		cfg:     c,
		m:       newMetrics(deps.Registerer),
		limit:   newClientLimiter(c.NotifyRate, c.NotifyBurst),

		serialWriter: deps.Store != nil && deps.Store.SerialWrites(),
	}
}

// Payment is one stored payment.
type Payment struct {
	Reference            string    `json:"reference"`
	Gateway              string    `json:"gateway"`
	Merchant             string    `json:"merchant"`
	ProviderReference    string    `json:"provider_reference"`
	TransactionDate      string    `json:"transaction_date,omitempty"`
	OrderID              string    `json:"order_id"`
	Amount               int64     `json:"amount"`
	Currency             string    `json:"currency"`
	CustomerID           string    `json:"customer_id,omitempty"`
	CustomerEmail        string    `json:"customer_email,omitempty"`
	SuccessURL           string    `json:"success_url"`
	FailureURL           string    `json:"failure_url"`
	State                State     `json:"state"`
	DecidedChannel       string    `json:"decided_channel,omitempty"`
	DecidedAt            time.Time `json:"decided_at,omitzero"`
	DecidedRawID         int64     `json:"decided_raw_id,omitempty"`
	ResponseCode         string    `json:"response_code,omitempty"`
	AcquirerResponseCode string    `json:"acquirer_response_code,omitempty"`
	AuthorisationID      string    `json:"authorisation_id,omitempty"`
	Explanation          string    `json:"explanation,omitempty"`
	CreatedAt            time.Time `json:"created_at"`
	UpdatedAt            time.Time `json:"updated_at"`
	NextCheckAt          time.Time `json:"next_check_at,omitzero"`
	CheckCount           int64     `json:"check_count"`
	Version              int64     `json:"version"`
	// Attempt is the payment's number among its order's payments (1, 2, ...).
	Attempt int64 `json:"attempt"`
}

// Response is one row of a payment's timeline.
type Response struct {
	ID                   string          `json:"id"`
	Reference            string          `json:"reference"`
	Gateway              string          `json:"gateway"`
	RawID                int64           `json:"raw_id"`
	Channel              string          `json:"channel"`
	Outcome              string          `json:"outcome,omitempty"`
	ResponseCode         string          `json:"response_code,omitempty"`
	AcquirerResponseCode string          `json:"acquirer_response_code,omitempty"`
	Verdict              Verdict         `json:"verdict"`
	At                   time.Time       `json:"at"`
	Details              json.RawMessage `json:"details,omitempty"`
}

// OperationInfo is a later operation on a payment (capture, refund,
// cancellation of the authorisation), as the provider reported it.
type OperationInfo struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`   // capture, refund, cancel
	Status   string `json:"status"` // done, pending, refused
	Amount   int64  `json:"amount,omitempty"`
	Currency string `json:"currency,omitempty"`
}

// Detail is a payment with its timeline, for `acquit payments show`.
type Detail struct {
	Payment  Payment    `json:"payment"`
	Timeline []Response `json:"timeline"`
	// Attempts lists every payment of the same order (this one included),
	// oldest first: a new attempt follows a refusal, cancellation or expiry.
	Attempts []Payment `json:"attempts,omitempty"`
}

// EventPayload is the payload of every payment.* event.
type EventPayload struct {
	Payment              Payment `json:"payment"`
	Channel              string  `json:"channel"`
	RawID                int64   `json:"raw_id,omitempty"`
	Outcome              string  `json:"outcome,omitempty"`
	ResponseCode         string  `json:"response_code,omitempty"`
	AcquirerResponseCode string  `json:"acquirer_response_code,omitempty"`
	AuthorisationID      string  `json:"authorisation_id,omitempty"`
	Explanation          string  `json:"explanation,omitempty"`
	// Reason explains payment.conflict, payment.mismatch and payment.unknown.
	Reason string `json:"reason,omitempty"`
	// Fields are the provider's raw fields, decoded.
	Fields map[string]string `json:"fields,omitempty"`
	// Operation is set on payment.captured, payment.refunded, payment.voided
	// and payment.operation_refused: the later operation the provider
	// reported.
	Operation *OperationInfo `json:"operation,omitempty"`
}

// ValidationError says a StartRequest (or an admin query) is invalid.
type ValidationError struct {
	Field   string
	Message string
}

// Error implements error.
func (e *ValidationError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Message) }

// ErrUnknownGateway says no payment gateway of that name is configured.
// Deps.Gateway returns it (or the plugin host's ErrUnknownPlugin /
// ErrWrongKind, recognised too) for a name that is not a configured
// gateway; a notification for such a name is answered 404 and not stored.
var ErrUnknownGateway = errors.New("unknown payment gateway")

// isUnknownGateway reports whether a Deps.Gateway error means the name is
// not a configured payment gateway (rather than one that cannot be used
// now).
func isUnknownGateway(err error) bool {
	return errors.Is(err, ErrUnknownGateway) || errors.Is(err, pluginhost.ErrUnknownPlugin) ||
		errors.Is(err, pluginhost.ErrWrongKind)
}

// ErrUnavailable wraps failures of the store or of a gateway that make a
// request impossible to serve now (retry later).
var ErrUnavailable = errors.New("payments unavailable")

// ---------------------------------------------------------------------------
// metrics

type metrics struct {
	notifications *prometheus.CounterVec
	rejects       *prometheus.CounterVec
	transitions   *prometheus.CounterVec
	pending       prometheus.Gauge
	reconcile     *prometheus.CounterVec
	started       *prometheus.CounterVec
	startRepeated *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	operations    *prometheus.CounterVec
	rateLimited   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "acquit", Subsystem: "payments", Name: "notifications_total",
			Help: "Notifications received on the public listener, by gateway, channel and verdict.",
		}, []string{"gateway", "channel", "verdict"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "acquit", Subsystem: "payments", Name: "rejects_total",
			Help: "Notifications rejected by the gateway, by reject code.",
		}, []string{"gateway", "code"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "acquit", Subsystem: "payments", Name: "transitions_total",
			Help: "Payment state transitions, by new state and the channel that caused them.",
		}, []string{"outcome", "channel"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "acquit", Subsystem: "payments", Name: "pending",
			Help: "Payments still pending (exact after each reconcile pass).",
		}),
		reconcile: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "acquit", Subsystem: "payments", Name: "reconcile_results_total",
			Help: "Reconciliation results per payment checked.",
		}, []string{"result"}),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "acquit", Subsystem: "payments", Name: "started_total",
			Help: "Payments started, by gateway.",
		}, []string{"gateway"}),
		startRepeated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "acquit", Subsystem: "payments", Name: "starts_repeated_total",
			Help: "Payment starts answered with the order's existing payment (same Idempotency-Key, or the order held by a live payment), by gateway.",
		}, []string{"gateway"}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "acquit", Subsystem: "payments", Name: "operations_total",
			Help: "Later operations on payments recorded with an event (capture, refund, cancel), by kind and status.",
		}, []string{"kind", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "acquit", Subsystem: "payments", Name: "notification_seconds",
			Help:    "Time to store, verify and apply one notification.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"channel"}),
	}
	m.rateLimited = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "acquit", Subsystem: "payments", Name: "rate_limited_total",
		Help: "Notifications refused (429, not stored) because their client address sent more than the configured rate.",
	})
	if reg != nil {
		m.rateLimited = registered(reg, m.rateLimited)
		m.notifications = registered(reg, m.notifications)
		m.rejects = registered(reg, m.rejects)
		m.transitions = registered(reg, m.transitions)
		m.pending = registered(reg, m.pending)
		m.reconcile = registered(reg, m.reconcile)
		m.started = registered(reg, m.started)
		m.startRepeated = registered(reg, m.startRepeated)
		m.duration = registered(reg, m.duration)
		m.operations = registered(reg, m.operations)
	}
	return m
}

// ---------------------------------------------------------------------------
// helpers

// registered registers c, or reuses the collector already registered
// under the same description (a second Service on one registry); payments
// metrics never stop a start, so other errors leave c unregistered.
func registered[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	got, _ := promreg.Register(reg, c)
	return got
}

// sanitizeHeaders drops credentials a browser might send along; the rest is
// stored as received.
func sanitizeHeaders(h http.Header) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, v := range h {
		switch http.CanonicalHeaderKey(k) {
		case "Cookie", "Authorization", "Proxy-Authorization":
			continue
		}
		out[k] = append([]string(nil), v...)
	}
	return out
}
