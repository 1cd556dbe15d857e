package transmissions

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/daemon/store"
)

// UploadRequest is the admin API's body for POST /v1/transmissions.
type UploadRequest struct {
	Bank     string `json:"bank"`
	Function string `json:"function"`
	// Path of a file readable by the daemon; or the file in the body with
	// Content-Type application/xml and ?bank=&function=&name=.
	Path string `json:"path"`
	// Wait makes the call return after the upload, not after recording.
	Wait bool `json:"wait"`
}

// AdminHandler mounts the admin endpoints: POST /v1/transmissions, GET
// /v1/transmissions, GET /v1/transmissions/{id}, POST /v1/banks/{bank}/fetch-acks.
func (s *Service) AdminHandler(owner string, maxUpload int64) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/transmissions", func(w http.ResponseWriter, r *http.Request) {
		var req UploadRequest
		path := ""
		if ct := r.Header.Get("Content-Type"); ct == "application/xml" || ct == "text/xml" {
			q := r.URL.Query()
			req = UploadRequest{Bank: q.Get("bank"), Function: q.Get("function"), Wait: q.Get("wait") == "true"}
			name := filepath.Base(q.Get("name"))
			if name == "." || name == "/" || name == "" {
				name = "upload.xml"
			}
			dir, err := os.MkdirTemp(s.d.SpoolDir, ".api-*")
			if err != nil {
				httpapi.WriteError(w, 500, err)
				return
			}
			defer os.RemoveAll(dir)
			path = filepath.Join(dir, name)
			f, err := os.Create(path)
			if err != nil {
				httpapi.WriteError(w, 500, err)
				return
			}
			_, err = io.Copy(f, http.MaxBytesReader(w, r.Body, maxUpload))
			f.Close()
			if err != nil {
				httpapi.WriteError(w, http.StatusRequestEntityTooLarge, err)
				return
			}
		} else {
			if err := httpapi.DecodeJSON(r, &req); err != nil {
				httpapi.WriteError(w, 400, err)
				return
			}
			path = req.Path
		}
		res, err := s.Submit(r.Context(), req.Bank, req.Function, path)
		if errors.Is(err, ErrUnknownBank) {
			httpapi.WriteError(w, 404, err)
			return
		}
		if err != nil {
			httpapi.WriteError(w, 400, err)
			return
		}
		t := res.Transmission
		if r.URL.Query().Get("progress") == "ndjson" {
			s.streamUpload(w, r, res, owner, req.Wait)
			return
		}
		if req.Wait && t.State == StateQueued {
			sent, err := s.SendWait(r.Context(), t.ID, owner, nil)
			if err != nil {
				httpapi.WriteJSON(w, http.StatusAccepted, map[string]any{"transmission": t, "existing": res.Existing, "error": err.Error()})
				return
			}
			t = sent
		}
		code := http.StatusCreated
		if res.Existing {
			code = http.StatusOK
		}
		httpapi.WriteJSON(w, code, map[string]any{"transmission": t, "existing": res.Existing})
	})
	mux.HandleFunc("GET /v1/transmissions", func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		ts, err := s.List(r.Context(), r.URL.Query().Get("state"), limit)
		if errors.Is(err, ErrUnknownState) {
			httpapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		if err != nil {
			httpapi.WriteError(w, 500, err)
			return
		}
		if ts == nil {
			ts = []Transmission{}
		}
		httpapi.WriteJSON(w, 200, ts)
	})
	mux.HandleFunc("GET /v1/transmissions/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, err := s.Describe(r.Context(), r.PathValue("id"))
		if errors.Is(err, store.ErrNotFound) {
			httpapi.WriteError(w, 404, fmt.Errorf("no transmission %s", r.PathValue("id")))
			return
		}
		if err != nil {
			httpapi.WriteError(w, 500, err)
			return
		}
		httpapi.WriteJSON(w, 200, d)
	})
	mux.HandleFunc("POST /v1/banks/{bank}/fetch-acks", func(w http.ResponseWriter, r *http.Request) {
		params := map[string]string{"bank": r.PathValue("bank")}
		for k, v := range r.URL.Query() {
			if len(v) > 0 {
				params[k] = v[0]
			}
		}
		sum, err := s.FetchAcks(r.Context(), params)
		if err != nil {
			httpapi.WriteJSON(w, 502, map[string]string{"error": err.Error(), "summary": sum})
			return
		}
		httpapi.WriteJSON(w, 200, map[string]string{"summary": sum})
	})
	return mux
}

// UploadProgress is one progress line of POST /v1/transmissions?progress=ndjson.
// Stage is "recorded" (the daemon has the file, parsed and stored),
// "encrypting" (the plugin compresses, signs and encrypts it) or "sending"
// (segments going to the bank). Bytes and Size count the original file:
// while sending, Bytes is the share of it the segments sent so far carry
// (Sent/Total: the encrypted bytes themselves).
type UploadProgress struct {
	Stage string `json:"stage"`
	Bytes int64  `json:"bytes"`
	Size  int64  `json:"size"`
	Sent  int64  `json:"sent,omitempty"`
	Total int64  `json:"total,omitempty"`
}

// streamUpload answers with NDJSON: UploadProgress lines while the plugin
// uploads, then the final {"transmission", "existing"[, "error"]}.
func (s *Service) streamUpload(w http.ResponseWriter, r *http.Request, res *SubmitResult, owner string, wait bool) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	code := http.StatusCreated
	if res.Existing {
		code = http.StatusOK
	}
	w.WriteHeader(code)
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	var mu sync.Mutex
	emit := func(v any) {
		_ = enc.Encode(v)
		if fl != nil {
			fl.Flush()
		}
	}
	t := res.Transmission
	size := t.Size
	emit(UploadProgress{Stage: "recorded", Bytes: size, Size: size})
	last := time.Time{}
	progress := func(sent, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 100*time.Millisecond && sent < total {
			return
		}
		last = time.Now()
		p := UploadProgress{Stage: "sending", Size: size, Sent: sent, Total: total}
		if total > 0 {
			p.Bytes = min(size, int64(float64(size)*float64(sent)/float64(total)))
		}
		emit(p)
	}
	final := map[string]any{"existing": res.Existing}
	if wait && t.State == StateQueued {
		mu.Lock()
		emit(UploadProgress{Stage: "encrypting", Size: size})
		mu.Unlock()
		sent, err := s.SendWait(r.Context(), t.ID, owner, progress)
		if err != nil {
			final["error"] = err.Error()
		} else {
			t = sent
		}
	}
	final["transmission"] = t
	mu.Lock()
	defer mu.Unlock()
	_ = enc.Encode(final)
}
