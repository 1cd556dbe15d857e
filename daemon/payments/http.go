package payments

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
)

// PublicHandler serves the provider's notifications:
//
//	POST /notify/{gateway}/automatic  server-to-server: 200 when applied
//	     (decided, duplicate, conflict, mismatch, not final, unknown
//	     reference), 400 when rejected, 404 (not stored) when {gateway} is
//	     no configured gateway, 413 when oversized, 503 when stored but the
//	     gateway plugin is unavailable, 500 only when the raw input could
//	     not be stored (the provider should retry).
//	POST /notify/{gateway}/manual     the customer's browser: a 303
//	     redirect, or the neutral "being confirmed" page while the payment
//	     is undecided (see the package documentation).
func (s *Service) PublicHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /notify/{gateway}/automatic", s.serveAutomatic)
	mux.HandleFunc("POST /notify/{gateway}/manual", s.serveManual)
	// Some provider configurations send the customer back with GET.
	mux.HandleFunc("GET /notify/{gateway}/manual", s.serveManual)
	return mux
}

func (s *Service) serveAutomatic(w http.ResponseWriter, r *http.Request) {
	gw := r.PathValue("gateway")
	if !reGateway.MatchString(gw) {
		http.NotFound(w, r)
		return
	}
	// The provider hanging up must not abort a transaction under way.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.AutomaticTimeout)
	defer cancel()
	res, err := s.HandleNotification(ctx, gw, sdk.ChannelAutomatic, r)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case errors.Is(err, ErrUnknownGateway):
		http.Error(w, "unknown gateway", http.StatusNotFound)
	case errors.Is(err, ErrRateLimited):
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests from this address", http.StatusTooManyRequests)
	case errors.Is(err, ErrRawNotStored):
		http.Error(w, "not stored, retry", http.StatusInternalServerError)
	case res.Verdict == VerdictRejected && res.RejectCode == "too_large":
		http.Error(w, "rejected: oversized", http.StatusRequestEntityTooLarge)
	case res.Verdict == VerdictRejected:
		http.Error(w, "rejected: "+res.RejectCode, http.StatusBadRequest)
	case errors.Is(err, ErrUnavailable) && res.RejectCode != "":
		// Stored, but the plugin could not look at it: a retry helps.
		http.Error(w, "stored, not verified, retry", http.StatusServiceUnavailable)
	default:
		// Stored and verified; if applying failed, reconciliation settles it.
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "OK\n")
	}
}

func (s *Service) serveManual(w http.ResponseWriter, r *http.Request) {
	gw := r.PathValue("gateway")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.ManualTimeout)
	defer cancel()
	var res *NotificationResult
	if reGateway.MatchString(gw) {
		res, _ = s.HandleNotification(ctx, gw, sdk.ChannelManual, r)
	} else {
		res = &NotificationResult{Verdict: VerdictRejected, RejectCode: "unknown_gateway"}
	}
	target := s.manualTarget(res)
	if target == "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, neutralPage)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// manualTarget chooses where a returning customer goes ("" = the neutral
// "being confirmed" page):
//   - payment known, still undecided (pending, or unknown) and the response
//     not final (e.g. Sips 60): the neutral page, since neither URL would be
//     true yet;
//   - payment known otherwise: its success URL when its stored state is
//     accepted (decided by this response or earlier), its failure URL
//     otherwise (a mismatching response included);
//   - payment state unreadable but the response verified: the neutral page
//     when the response is not final, else the URLs are read again (short
//     timeout) and the verified outcome chooses;
//   - nothing known: Config.FallbackReturnURL ("" = neutral page).
func (s *Service) manualTarget(res *NotificationResult) string {
	if res.SuccessURL != "" && res.State != "" {
		switch {
		case res.State == StateAccepted:
			return res.SuccessURL
		case res.State.Decidable() && res.Verdict == VerdictNotFinal:
			return ""
		}
		return res.FailureURL
	}
	if res.Outcome != "" && (!res.Outcome.Final() || res.AskLater) {
		return ""
	}
	if res.Outcome != "" && res.ProviderReference != "" {
		// Verified but not applied (store slow or down): one short read
		// for the URLs, on a reader (not queued behind the writer that
		// is slow); the verified outcome chooses.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var p *Payment
		err := s.st.View(ctx, func(tx store.Tx) error {
			var err error
			p, _, err = findByProvider(ctx, tx, res.Gateway, &sdk.PaymentResult{Reference: res.ProviderReference, TransactionDate: res.TransactionDate})
			return err
		})
		if err == nil {
			if res.Outcome == sdk.OutcomeAccepted && !res.AskLater {
				return p.SuccessURL
			}
			return p.FailureURL
		}
	}
	return s.cfg.FallbackReturnURL
}

const neutralPage = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Payment</title></head>
<body><p>Thank you. Your payment is being confirmed; the shop will let you know the result.</p></body></html>
`

// ---------------------------------------------------------------------------
// admin

// AdminHandler serves the shop/admin API (token auth is done around it):
//
//	POST /v1/payments        start a payment (JSON StartRequest; JSON Started,
//	                         or the auto-submitting page with Accept: text/html)
//	GET  /v1/payments        list (?state=&gateway=&order_id=&verdict=&limit=)
//	GET  /v1/payments/{ref}  payment and timeline (Detail)
func (s *Service) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/payments", s.adminStart)
	mux.HandleFunc("GET /v1/payments", s.adminList)
	mux.HandleFunc("GET /v1/payments/{ref}", s.adminGet)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (s *Service) adminStart(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			writeErr(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
			return
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	var req StartRequest
	if err := dec.Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	if dec.More() {
		writeErr(w, http.StatusBadRequest, "invalid JSON: trailing data")
		return
	}
	st, err := s.StartIdempotent(r.Context(), req, r.Header.Get("Idempotency-Key"))
	if err != nil {
		var ve *ValidationError
		switch {
		case errors.Is(err, ErrIdempotencyMismatch), errors.Is(err, ErrOrderHeld):
			writeErr(w, http.StatusConflict, err.Error())
		case errors.As(err, &ve):
			writeErr(w, http.StatusBadRequest, ve.Error())
		default:
			s.log.Error().Err(err).Str("order_id", req.OrderID).Msg("payment start failed")
			writeErr(w, http.StatusServiceUnavailable, "payment could not be started")
		}
		return
	}
	code := http.StatusCreated
	if st.Existing {
		code = http.StatusOK // the order's payment, started before
	}
	if acceptsHTML(r.Header.Get("Accept")) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Payment-Reference", st.Reference)
		w.WriteHeader(code)
		_, _ = io.WriteString(w, st.HTML)
		return
	}
	writeJSON(w, code, st)
}

func acceptsHTML(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		if mt == "text/html" {
			return true
		}
		if mt == "application/json" {
			return false
		}
	}
	return false
}

func (s *Service) adminList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := ListFilter{State: State(q.Get("state")), Gateway: q.Get("gateway"), OrderID: q.Get("order_id"), Verdict: Verdict(q.Get("verdict"))}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "limit must be an integer")
			return
		}
		f.Limit = n
	}
	ps, err := s.List(r.Context(), f)
	if err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			writeErr(w, http.StatusBadRequest, ve.Error())
			return
		}
		writeErr(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	writeJSON(w, http.StatusOK, ps)
}

func (s *Service) adminGet(w http.ResponseWriter, r *http.Request) {
	d, err := s.Get(r.Context(), r.PathValue("ref"))
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, d)
	case errors.Is(err, store.ErrNotFound):
		writeErr(w, http.StatusNotFound, "no such payment")
	default:
		var ve *ValidationError
		if errors.As(err, &ve) {
			writeErr(w, http.StatusBadRequest, ve.Error())
			return
		}
		writeErr(w, http.StatusServiceUnavailable, "store unavailable")
	}
}
