package sim

// The admin endpoints of the simulator command (activation, orders).

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// maxAdminDocument bounds a document offered through POST /admin/documents.
const maxAdminDocument = 4 << 30

func (s *Sim) admin(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/admin/activate" && r.Method == http.MethodPost:
		if err := s.Activate(r.URL.Query().Get("partner"), r.URL.Query().Get("user")); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprintln(w, "ready")
	case r.URL.Path == "/admin/orders" && r.Method == http.MethodGet:
		type view struct {
			OrderID, TransactionID, OrderType, PartnerID, UserID, MsgID string
			Accepted                                                    bool
			Reasons                                                     []string
			Bytes                                                       int64
			Received                                                    time.Time
		}
		var out []view
		for _, o := range s.Orders() {
			out = append(out, view{o.OrderID, o.TransactionID, o.OrderType, o.PartnerID, o.UserID, o.MsgID, o.Accepted, o.Reasons, cmp.Or(o.Size, int64(len(o.Data))), o.Received})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	case r.URL.Path == "/admin/documents" && r.Method == http.MethodPost:
		// Offers the body as a document for download (tests of large
		// documents through a simulator in its own process).
		q := r.URL.Query()
		if q.Get("partner") == "" || q.Get("kind") == "" {
			http.Error(w, "partner and kind are required", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminDocument+1))
		if err != nil || len(body) > maxAdminDocument {
			http.Error(w, fmt.Sprintf("document unreadable or over %d bytes: %v", maxAdminDocument, err), http.StatusRequestEntityTooLarge)
			return
		}
		fmt.Fprintln(w, s.AddDocument(q.Get("partner"), q.Get("kind"), q.Get("format"), body))
	case r.URL.Path == "/admin/documents" && r.Method == http.MethodGet:
		type view struct {
			ID, Kind, Format, Partner string
			Bytes                     int
			Delivered                 bool
		}
		out := []view{}
		for _, d := range s.Docs() {
			out = append(out, view{d.ID, d.Kind, d.Format, d.Partner, len(d.Content), d.Delivered})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	default:
		http.NotFound(w, r)
	}
}
