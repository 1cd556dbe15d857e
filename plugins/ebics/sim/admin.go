package sim

// The admin endpoints of the simulator command (activation, orders).

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

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
	default:
		http.NotFound(w, r)
	}
}
