package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/acquit/acquit/daemon/store"
)

// MaxEventFile is the largest event file ParseEvent accepts.
const MaxEventFile = 4 << 20

// ErrBadEvent is returned by ParseEvent for a malformed event file.
var ErrBadEvent = errors.New("bad event file")

var eventTypeRe = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

type eventFile struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Subject   string          `json:"subject"`
	CreatedAt *time.Time      `json:"created_at"`
	Payload   json.RawMessage `json:"payload"`
}

// ParseEvent reads an event file, as given to `acquit hooks run EVENT
// --event file.json`:
//
//	{"id": "...", "type": "payment.accepted", "subject": "payment:R1",
//	 "created_at": "2026-11-23T10:15:00Z", "payload": {...}}
//
// Only type is required (id defaults to "dry-run", created_at to now).
// Unknown fields, trailing data, oversized files and non-object payloads
// are refused with ErrBadEvent.
func ParseEvent(b []byte) (store.Event, error) { return parseEvent(b, "") }

// EventFromFile reads the --event file of `acquit hooks run EVENT`: either
// a full event (an object with a "payload" key, as ParseEvent reads; its
// type must then be eventType or absent) or just the payload object, which
// is wrapped in an event of type eventType with id "dry-run".
func EventFromFile(eventType string, b []byte) (store.Event, error) {
	if len(b) > MaxEventFile {
		return store.Event{}, fmt.Errorf("event file of %d bytes exceeds %d: %w", len(b), MaxEventFile, ErrBadEvent)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return store.Event{}, fmt.Errorf("event file: %v: %w", err, ErrBadEvent)
	}
	if _, ok := probe["payload"]; ok {
		ev, err := parseEvent(b, eventType)
		if err != nil {
			return ev, err
		}
		if eventType != "" && ev.Type != eventType {
			return store.Event{}, fmt.Errorf("event file holds a %s event, not %s: %w", ev.Type, eventType, ErrBadEvent)
		}
		return ev, nil
	}
	env, err := json.Marshal(map[string]any{"type": eventType, "payload": json.RawMessage(b)})
	if err != nil {
		return store.Event{}, fmt.Errorf("event file: %v: %w", err, ErrBadEvent)
	}
	return parseEvent(env, "")
}

func parseEvent(b []byte, defaultType string) (store.Event, error) {
	if len(b) > MaxEventFile {
		return store.Event{}, fmt.Errorf("event file of %d bytes exceeds %d: %w", len(b), MaxEventFile, ErrBadEvent)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f eventFile
	if err := dec.Decode(&f); err != nil {
		return store.Event{}, fmt.Errorf("event file: %v: %w", err, ErrBadEvent)
	}
	if _, err := dec.Token(); err != io.EOF {
		return store.Event{}, fmt.Errorf("event file: trailing data: %w", ErrBadEvent)
	}
	if f.Type == "" {
		f.Type = defaultType
	}
	if !eventTypeRe.MatchString(f.Type) || len(f.Type) > 100 {
		return store.Event{}, fmt.Errorf("event file: type %q is not an event type like payment.accepted: %w", f.Type, ErrBadEvent)
	}
	if len(f.ID) > 200 || len(f.Subject) > 500 {
		return store.Event{}, fmt.Errorf("event file: id or subject too long: %w", ErrBadEvent)
	}
	p := bytes.TrimSpace(f.Payload)
	if len(p) == 0 || bytes.Equal(p, []byte("null")) {
		p = []byte("{}")
	}
	if p[0] != '{' {
		return store.Event{}, fmt.Errorf("event file: payload must be a JSON object: %w", ErrBadEvent)
	}
	ev := store.Event{ID: f.ID, Type: f.Type, Subject: f.Subject, Payload: json.RawMessage(p), State: store.EventPending}
	if ev.ID == "" {
		ev.ID = "dry-run"
	}
	if f.CreatedAt != nil {
		ev.CreatedAt = f.CreatedAt.UTC()
	} else {
		ev.CreatedAt = time.Now().UTC()
	}
	return ev, nil
}
