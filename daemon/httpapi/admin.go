package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/acquit/acquit/daemon/store"
)

// ScheduleInfo is one row of `acquit schedules list`.
type ScheduleInfo struct {
	Name        string `json:"name"`
	Spec        string `json:"spec"`
	TimeZone    string `json:"timezone"`
	Job         string `json:"job"`
	Next        string `json:"next"`
	LastStarted string `json:"last_started,omitempty"`
	LastOK      *bool  `json:"last_ok,omitempty"`
	LastSummary string `json:"last_summary,omitempty"`
	LastError   string `json:"last_error,omitempty"`
	Running     bool   `json:"running"`
}

// AdminAPI serves the admin endpoints of the core: events and schedules.
// Feature packages (payments, transmissions) mount their own handlers.
type AdminAPI struct {
	Events    store.Events
	Schedules func() []ScheduleInfo
	// Wake is called after a replay so the dispatcher picks it up at once.
	Wake func()
	// Emit adds an event to the outbox (POST /v1/events); nil disables it.
	Emit func(ctx context.Context, ev store.NewEvent) (store.Event, error)
}

// EmitRequest is the body of POST /v1/events: an operator's own event, to
// try hooks on a running daemon. Only "custom." and "demo." types are
// accepted: domain events (payment.*, transmission.*) cannot be forged.
type EmitRequest struct {
	Type    string          `json:"type"`
	Subject string          `json:"subject"`
	Data    json.RawMessage `json:"data"`
}

// Register mounts the endpoints on mux.
func (a *AdminAPI) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/events", a.listEvents)
	mux.HandleFunc("GET /v1/events/{id}", a.getEvent)
	mux.HandleFunc("POST /v1/events/{id}/replay", a.replayEvent)
	mux.HandleFunc("POST /v1/events", a.emit)
	mux.HandleFunc("GET /v1/schedules", func(w http.ResponseWriter, r *http.Request) {
		var out []ScheduleInfo
		if a.Schedules != nil {
			out = a.Schedules()
		}
		if out == nil {
			out = []ScheduleInfo{}
		}
		WriteJSON(w, http.StatusOK, out)
	})
}

func (a *AdminAPI) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.EventFilter{
		State:   store.EventState(q.Get("state")),
		Type:    q.Get("type"),
		Subject: q.Get("subject"),
		Limit:   100,
	}
	switch f.State {
	case "", store.EventPending, store.EventRunning, store.EventDelivered, store.EventDead:
	default:
		WriteJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("unknown event state %q (one of pending, running, delivered, dead)", f.State)})
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "limit must be 1..10000"})
			return
		}
		f.Limit = n
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "after must be an integer"})
			return
		}
		f.AfterSeq = n
	}
	evs, err := a.Events.ListEvents(r.Context(), f)
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	if evs == nil {
		evs = []store.Event{}
	}
	WriteJSON(w, http.StatusOK, evs)
}

// EventDetail is an event with its delivery attempts.
type EventDetail struct {
	store.Event
	AttemptLog []store.Attempt `json:"attempt_log"`
}

func (a *AdminAPI) getEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ev, err := a.Events.GetEvent(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no event " + id})
		return
	}
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	atts, err := a.Events.EventAttempts(r.Context(), id)
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	WriteJSON(w, http.StatusOK, EventDetail{Event: *ev, AttemptLog: atts})
}

// Replay puts a dead (or delivered) event back in the queue, wakes the
// dispatcher and returns the event as it now is. The JSON endpoint and the
// dashboard both replay through it.
func (a *AdminAPI) Replay(ctx context.Context, id string) (*store.Event, error) {
	if err := a.Events.ReplayEvent(ctx, id); err != nil {
		return nil, fmt.Errorf("replay %s: %w", id, err)
	}
	if a.Wake != nil {
		a.Wake()
	}
	ev, err := a.Events.GetEvent(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", id, err)
	}
	return ev, nil
}

func (a *AdminAPI) replayEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ev, err := a.Replay(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no event " + id})
		return
	}
	if err != nil {
		WriteError(w, http.StatusConflict, err)
		return
	}
	WriteJSON(w, http.StatusOK, ev)
}

func (a *AdminAPI) emit(w http.ResponseWriter, r *http.Request) {
	if a.Emit == nil {
		WriteJSON(w, http.StatusNotFound, map[string]string{"error": "emitting events is disabled"})
		return
	}
	var req EmitRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "bad JSON: " + err.Error()})
		return
	}
	if !strings.HasPrefix(req.Type, "custom.") && !strings.HasPrefix(req.Type, "demo.") {
		WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "only custom.* and demo.* events can be emitted"})
		return
	}
	if len(req.Data) == 0 {
		req.Data = json.RawMessage("{}")
	}
	if req.Subject == "" {
		req.Subject = req.Type
	}
	ev, err := a.Emit(r.Context(), store.NewEvent{Type: req.Type, Subject: req.Subject, Payload: req.Data})
	if err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	if a.Wake != nil {
		a.Wake()
	}
	WriteJSON(w, http.StatusCreated, ev)
}
