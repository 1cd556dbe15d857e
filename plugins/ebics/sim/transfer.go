package sim

// The transaction state machine: initialisation, upload and download
// segments, receipts, recovery and expiry.

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/acquit/acquit/plugins/ebics/protocol"
)

type tx struct {
	id        string
	sub       *subscriber
	version   protocol.Version
	upload    bool
	orderType string
	orderID   string
	params    protocol.OrderParams
	numSeg    int
	segments  []string // download segments; upload segments in memory mode
	// Upload segments are decoded as they arrive (dec, decode.go); their
	// SHA-256 tell a resent segment's content.
	segSums    [][32]byte
	dec        *orderDecoder
	key        []byte // the unwrapped transaction key (first segment)
	keyErr     error  // the key could not be unwrapped: refused at the end
	wrappedKey []byte
	sigData    []byte
	dataDigest []byte
	done       bool
	doc        *Doc
	served     int // download: the highest segment number sent so far
	created    time.Time
	lastSeen   time.Time // last request of the transaction (expiry)
	response   []byte    // final response of a completed upload (recovery)
}

// received is the number of upload segments the bank holds.
func (t *tx) received() int { return len(t.segSums) }

// sameSegment reports whether data is the content of held segment n.
func (t *tx) sameSegment(n int, data string) bool {
	return sha256.Sum256([]byte(data)) == t.segSums[n-1]
}

// addSegment takes the next upload segment: its digest is kept and it goes
// to the upload's decoder (started with the first segment, once the
// transaction key is unwrapped).
func (s *Sim) addSegment(t *tx, data string) {
	if len(t.segSums) == 0 {
		t.key, t.keyErr = protocol.UnwrapKey(s.encKey.Private, t.wrappedKey)
		if t.keyErr == nil {
			t.dec = s.startDecoder(t, t.key)
		}
	}
	t.segSums = append(t.segSums, sha256.Sum256([]byte(data)))
	if s.cfg.SpoolDir == "" {
		t.segments = append(t.segments, data)
	}
	if t.dec != nil {
		t.dec.feed(data)
	}
}

// dropUpload stops the decoding of an unfinished upload (done, refused or
// abandoned) and removes what it wrote.
func (t *tx) dropUpload() {
	if t.dec != nil && !t.done {
		t.dec.abort()
	}
}

// assignOrderID gives an upload a bank-assigned OrderID: a letter and
// three alphanumerics, as the schema's OrderIDType requires, unique for
// the subscriber.
func (s *Sim) assignOrderID(sub *subscriber) string {
	const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for {
		s.seq++
		n := s.seq % (26 * 36 * 36 * 36)
		id := []byte{'A' + byte(n/(36*36*36)), alnum[n/(36*36)%36], alnum[n/36%36], alnum[n%36]}
		if !sub.orderIDs[string(id)] && !s.openOrderID(sub, string(id)) {
			return string(id)
		}
	}
}

// openOrderID reports whether an open upload of the subscriber holds the id.
func (s *Sim) openOrderID(sub *subscriber, id string) bool {
	for _, t := range s.txs {
		if t.sub == sub && t.upload && t.orderID == id {
			return true
		}
	}
	return false
}

// expireLocked drops the transactions idle for longer than TxTimeout (a
// bank's transaction timeout): an abandoned download's document is offered
// again to the next download, an unfinished upload is forgotten (a later
// request of it gets 091101 EBICS_TX_UNKNOWN_TXID). Completed uploads are
// kept as long (their final answer can be asked again), then dropped too.
func (s *Sim) expireLocked(now time.Time) {
	if s.cfg.TxTimeout < 0 {
		return
	}
	for id, t := range s.txs {
		if now.Sub(t.lastSeen) <= s.cfg.TxTimeout {
			continue
		}
		if t.doc != nil && t.doc.inFlight == id {
			t.doc.inFlight = ""
		}
		t.dropUpload()
		delete(s.txs, id)
		s.log.Info().Str("tx", id).Bool("upload", t.upload).Bool("complete", t.done).Dur("idle", now.Sub(t.lastSeen)).Msg("ebics sim: transaction expired")
	}
}

// ExpireTransactions drops open transactions (as a bank does after its
// timeout), releasing documents of unfinished downloads.
func (s *Sim) ExpireTransactions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.txs {
		if !t.done {
			if t.doc != nil && t.doc.inFlight == id {
				t.doc.inFlight = ""
			}
			t.dropUpload()
			delete(s.txs, id)
		}
	}
}

// ForgetTransactions drops every transaction, completed ones included (a
// bank that keeps no memory of finished uploads): a client that lost the
// final answer can no longer get it again.
func (s *Sim) ForgetTransactions() {
	s.ExpireTransactions()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.txs {
		delete(s.txs, id)
	}
}

// orderKind classifies an order: upload kinds and download kinds.
func orderKind(req *protocol.Request) (kind string, upload bool, ok bool) {
	p := req.Params
	switch req.OrderType {
	case "FUL":
		return "FUL:" + p.FileFormat, true, p.FileFormat != ""
	case "CCT", "CDD", "CDB", "XE2", "XE3", "CIP":
		return req.OrderType, true, true
	case "BTU":
		return "BTU:" + p.ServiceName, true, p.ServiceName != "" && p.MsgName != ""
	case "HAC", "PTK", "HAA", "HTD", "HKD":
		return req.OrderType, false, true
	case "Z01":
		return "PSR", false, true
	case "C53", "STA", "C52", "C54":
		return "STM", false, true
	case "FDL":
		switch {
		case strings.HasPrefix(p.FileFormat, "pain.002"):
			return "PSR", false, true
		case strings.HasPrefix(p.FileFormat, "camt.05"):
			return "STM", false, true
		}
		return p.FileFormat, false, p.FileFormat != ""
	case "BTD":
		switch p.ServiceName {
		case "PSR":
			return "PSR", false, true
		case "EOP", "STM":
			return "STM", false, true
		}
		return p.ServiceName, false, p.ServiceName != ""
	}
	return "", false, false
}

func (s *Sim) initialise(req *protocol.Request, tree *xnode) []byte {
	v := req.Version
	rk := protocol.KindResponse
	sub := s.subs[req.PartnerID+"/"+req.UserID]
	if sub == nil {
		return s.errorResponse(v, rk, protocol.CodeUserUnknown, "")
	}
	if sub.state != StateReady {
		return s.errorResponse(v, rk, protocol.CodeInvalidUserState, "subscriber "+string(sub.state))
	}
	if err := verifyX002Tree(tree, sub.auth.Key); err != nil {
		s.log.Warn().Err(err).Str("partner", req.PartnerID).Msg("ebics sim: authentication failed")
		return s.errorResponse(v, rk, protocol.CodeAuthenticationFailed, err.Error())
	}
	if c := s.checkFresh(req); c != "" {
		return s.errorResponse(v, rk, c, "")
	}
	wantAuth, wantEnc := s.BankKeyHashes(v)
	if !bytesEq(req.BankAuthHash, wantAuth) || !bytesEq(req.BankEncHash, wantEnc) {
		return s.errorResponse(v, rk, protocol.CodeBankPubkeyUpdate, "bank key digests do not match")
	}
	if s.faults.InternalErrorOnInit {
		s.faults.InternalErrorOnInit = false
		return s.errorResponse(v, rk, protocol.CodeInternalError, "injected")
	}
	kind, upload, ok := orderKind(req)
	if !ok || !s.offers(v, req.OrderType) {
		return s.errorResponse(v, rk, protocol.CodeUnsupportedOrderType, req.OrderType)
	}
	t := &tx{id: protocol.NewTransactionID(), sub: sub, version: v, upload: upload, orderType: req.OrderType, params: req.Params, created: time.Now()}
	t.lastSeen = s.now()
	if upload {
		if req.TransactionKey == nil || req.SignatureData == nil {
			return s.errorResponse(v, rk, protocol.CodeInvalidRequestContnt, "upload without DataEncryptionInfo/SignatureData")
		}
		if !bytesEq(req.EncKeyHash, wantEnc) {
			return s.errorResponse(v, rk, protocol.CodeBankPubkeyUpdate, "encryption key digest does not match")
		}
		if req.NumSegments < 1 || req.NumSegments > s.cfg.MaxSegments {
			return s.errorResponse(v, rk, protocol.CodeMaxSegmentsExceeded, fmt.Sprintf("NumSegments %d", req.NumSegments))
		}
		switch {
		case v == protocol.H004 && req.OrderID != "":
			if !validOrderID(req.OrderID) {
				return s.errorResponse(v, rk, protocol.CodeInvalidOrderParams, "OrderID "+req.OrderID)
			}
			if sub.orderIDs[req.OrderID] {
				return s.errorResponse(v, rk, protocol.CodeOrderIDExists, "OrderID "+req.OrderID)
			}
			t.orderID = req.OrderID
		default:
			// H005 always, and H004 without a client OrderID (optional in
			// the schema since 2.5): the bank assigns it and returns it in
			// the response header.
			t.orderID = s.assignOrderID(sub)
		}
		t.numSeg, t.wrappedKey, t.sigData, t.dataDigest = req.NumSegments, req.TransactionKey, req.SignatureData, req.DataDigest
		s.txs[t.id] = t
		s.log.Info().Str("tx", t.id).Str("order", t.orderID).Str("kind", kind).Int("segments", t.numSeg).Msg("ebics sim: upload initialised")
		resp := &protocol.Response{Version: v, Kind: rk, TransactionID: t.id, Phase: protocol.PhaseInitialisation, OrderID: t.orderID}
		b, _ := resp.Marshal(s.signKey())
		return b
	}
	var d *Doc
	switch kind {
	case "HAA":
		d = &Doc{ID: "HAA", Kind: "HAA", Partner: sub.partner, Content: protocol.HAAResponseOrderData(v, s.orderTypes(), s.services()), Created: time.Now()}
	case "HTD", "HKD":
		pd := s.partnerData(v, sub)
		d = &Doc{ID: kind, Kind: kind, Partner: sub.partner, Content: protocol.PartnerOrderData(v, kind+"ResponseOrderData", pd), Created: time.Now()}
	default:
		d = s.pickDoc(sub.partner, kind, req.Params)
	}
	if d == nil {
		return s.errorResponse(v, rk, protocol.CodeNoDownloadData, "")
	}
	key := protocol.NewTransactionKey()
	enc, _ := protocol.EncryptE002(key, protocol.Deflate(d.Content))
	wrapped, err := protocol.WrapKey(sub.enc.Key, key)
	if err != nil {
		return s.errorResponse(v, rk, protocol.CodeInternalError, err.Error())
	}
	t.segments = protocol.SplitSegments(b64(enc), s.cfg.DownloadSegmentSize)
	t.numSeg, t.doc, t.wrappedKey, t.served = len(t.segments), d, wrapped, 1
	d.inFlight = t.id
	s.txs[t.id] = t
	resp := &protocol.Response{Version: v, Kind: rk, TransactionID: t.id, NumSegments: t.numSeg, Phase: protocol.PhaseInitialisation,
		SegmentNumber: 1, LastSegment: t.numSeg == 1, EncKeyHash: sub.enc.Digest(v), TransactionKey: wrapped, OrderData: t.segments[0]}
	if v == protocol.H005 {
		s.seq++
		resp.OrderID = fmt.Sprintf("D%03X", s.seq%4096)
	}
	b, _ := resp.Marshal(s.signKey())
	return b
}

func (s *Sim) pickDoc(partner, kind string, p protocol.OrderParams) *Doc {
	var from, to time.Time
	ranged := p.DateStart != "" && p.DateEnd != ""
	if ranged {
		from, _ = time.Parse("2006-01-02", p.DateStart)
		to, _ = time.Parse("2006-01-02", p.DateEnd)
		to = to.Add(24 * time.Hour)
	}
	cands := []*Doc{}
	for _, d := range s.docs {
		if d.Partner != partner || d.Kind != kind || d.inFlight != "" {
			continue
		}
		if ranged {
			if d.Created.Before(from) || !d.Created.Before(to) {
				continue
			}
		} else if d.Delivered {
			continue
		}
		cands = append(cands, d)
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Created.Before(cands[j].Created) })
	if len(cands) == 0 {
		return nil
	}
	return cands[0]
}

func (s *Sim) transfer(req *protocol.Request, tree *xnode) ([]byte, error) {
	v := req.Version
	rk := protocol.KindResponse
	t := s.txs[req.TransactionID]
	if t == nil {
		return s.errorResponse(v, rk, protocol.CodeTxUnknownTxID, req.TransactionID), nil
	}
	t.lastSeen = s.now()
	if err := verifyX002Tree(tree, t.sub.auth.Key); err != nil {
		s.log.Warn().Err(err).Str("tx", t.id).Msg("ebics sim: authentication failed")
		return s.errorResponse(v, rk, protocol.CodeAuthenticationFailed, err.Error()), nil
	}
	base := protocol.Response{Version: v, Kind: rk, TransactionID: t.id, Phase: req.Phase}
	if req.Phase == protocol.PhaseReceipt {
		if t.upload || !req.HasReceipt {
			return s.errorResponse(v, rk, protocol.CodeInvalidRequest, "receipt without download"), nil
		}
		// The receipt phase follows the transfer of every segment: a
		// client confirms (or not) a document it has received whole. The
		// transaction stays open for the missing segments.
		if t.served < t.numSeg {
			s.log.Warn().Str("tx", t.id).Int("served", t.served).Int("segments", t.numSeg).Msg("ebics sim: receipt before the last segment")
			return s.errorResponse(v, rk, protocol.CodeInvalidRequest, fmt.Sprintf("receipt after segment %d of %d", t.served, t.numSeg)), nil
		}
		delete(s.txs, t.id)
		t.doc.inFlight = ""
		base.TechCode = protocol.CodePostprocessSkipped
		if req.ReceiptCode == 0 {
			t.doc.Delivered = true
			base.TechCode = protocol.CodePostprocessDone
		}
		s.log.Info().Str("tx", t.id).Str("doc", t.doc.ID).Int("receipt", req.ReceiptCode).Msg("ebics sim: download receipt")
		b, _ := base.Marshal(s.signKey())
		return b, nil
	}
	if req.Phase != protocol.PhaseTransfer || req.SegmentNumber < 1 {
		return s.errorResponse(v, rk, protocol.CodeInvalidRequest, "phase "+req.Phase), nil
	}
	n := req.SegmentNumber
	if n > t.numSeg {
		return s.errorResponse(v, rk, protocol.CodeTxSegmentExceeded, ""), nil
	}
	base.SegmentNumber, base.LastSegment = n, n == t.numSeg
	if !t.upload {
		base.OrderData = t.segments[n-1]
		t.served = max(t.served, n)
		b, _ := base.Marshal(s.signKey())
		return b, nil
	}
	// upload segment
	if t.done {
		if n == t.numSeg && t.response != nil {
			return t.response, nil // recovery of the final answer
		}
		return s.errorResponse(v, rk, protocol.CodeTxUnknownTxID, "transaction complete"), nil
	}
	if len(req.OrderData) > s.cfg.MaxSegmentSize {
		return s.errorResponse(v, rk, protocol.CodeSegmentSizeExceeded, fmt.Sprintf("%d bytes, limit %d", len(req.OrderData), s.cfg.MaxSegmentSize)), nil
	}
	if req.OrderData == "" {
		return s.errorResponse(v, rk, protocol.CodeInvalidRequestContnt, "empty segment"), nil
	}
	f := &s.faults
	switch {
	case f.DropAtSegment == n:
		f.DropAtSegment = 0
		return nil, errDrop
	case f.InternalErrorAtSegment == n:
		f.InternalErrorAtSegment = 0
		return s.errorResponse(v, rk, protocol.CodeInternalError, "injected"), nil
	case f.RecoverySyncAtSegment == n:
		f.RecoverySyncAtSegment = 0
		r := base
		r.TechCode, r.SegmentNumber, r.LastSegment = protocol.CodeTxRecoverySync, t.received(), false
		r.ReportText = fmt.Sprintf("[EBICS_TX_RECOVERY_SYNC] last segment received %d", t.received())
		b, _ := r.Marshal(s.signKey())
		return b, nil
	}
	switch {
	case n <= t.received():
		if !t.sameSegment(n, req.OrderData) {
			return s.errorResponse(v, rk, protocol.CodeTxAbort, "segment resent with other content"), nil
		}
	case n == t.received()+1:
		s.addSegment(t, req.OrderData)
	default:
		r := base
		r.TechCode, r.SegmentNumber, r.LastSegment = protocol.CodeTxRecoverySync, max(t.received(), 1), false
		r.ReportText = fmt.Sprintf("[EBICS_TX_RECOVERY_SYNC] last segment received %d", t.received())
		b, _ := r.Marshal(s.signKey())
		return b, nil
	}
	if req.LastSegment != (n == t.numSeg) {
		t.dropUpload()
		delete(s.txs, t.id)
		return s.errorResponse(v, rk, "011101", "lastSegment flag does not match NumSegments"), nil
	}
	if f.DropAfterSegment == n {
		f.DropAfterSegment = 0
		if n == t.numSeg {
			s.complete(t, base)
		}
		return nil, errDrop
	}
	if n < t.numSeg {
		b, _ := base.Marshal(s.signKey())
		return b, nil
	}
	return s.complete(t, base), nil
}

// complete checks and records an upload whose segments are all in: it
// waits for the decoding of the order data (fed segment by segment), then
// checks the ES over it.
func (s *Sim) complete(t *tx, base protocol.Response) []byte {
	v := t.version
	var dataPath string
	fail := func(code, report string) []byte {
		t.dropUpload()
		if dataPath != "" {
			os.Remove(dataPath)
		}
		delete(s.txs, t.id)
		s.log.Warn().Str("tx", t.id).Str("code", code).Str("report", report).Msg("ebics sim: upload refused")
		return s.errorResponse(v, protocol.KindResponse, code, report)
	}
	if t.keyErr != nil {
		return fail(protocol.CodeInvalidRequestContnt, t.keyErr.Error())
	}
	key := t.key
	t.dec.finish()
	size, digest, err := t.dec.size, t.dec.digest, t.dec.err
	var ce *protocol.CryptoError
	switch {
	case errors.As(err, &ce) && ce.Op == "inflate":
		return fail(protocol.CodeInvalidOrderData, err.Error())
	case err != nil:
		return fail(protocol.CodeInvalidRequestContnt, err.Error())
	}
	dataPath = t.dec.path
	sigComp, err := protocol.DecryptE002(key, t.sigData)
	if err != nil {
		return fail(protocol.CodeInvalidRequestContnt, "SignatureData: "+err.Error())
	}
	sigXML, err := protocol.Inflate(sigComp, 1<<20)
	if err != nil {
		return fail(protocol.CodeInvalidRequestContnt, "SignatureData: "+err.Error())
	}
	sigs, err := protocol.ParseUserSignatureData(sigXML)
	if err != nil {
		return fail("091111", err.Error())
	}
	if v == protocol.H005 && !bytesEq(digest, t.dataDigest) {
		return fail(protocol.CodeSignatureFailed, "DataDigest does not match the order data")
	}
	sg := sigs[0]
	if sg.PartnerID != t.sub.partner || sg.UserID != t.sub.user {
		return fail(protocol.CodePartnerIDMismatch, "ES by another subscriber")
	}
	if sg.Version != t.sub.sig.Version {
		return fail(protocol.CodeSignatureFailed, "ES version differs from the INI key's")
	}
	if err := verifyOrderSignature(sg.Version, t.sub.sig.Key, digest, sg.Value); err != nil {
		return fail(protocol.CodeSignatureFailed, err.Error())
	}
	t.done = true
	t.sub.orderIDs[t.orderID] = true
	kind, _, _ := orderKind(&protocol.Request{OrderType: t.orderType, Params: t.params})
	o := Order{OrderID: t.orderID, TransactionID: t.id, OrderType: kind, PartnerID: t.sub.partner, UserID: t.sub.user,
		Version: v, FileFormat: cmp.Or(t.params.FileFormat, t.params.MsgName), DataPath: dataPath, Size: size, Received: time.Now().UTC(),
		SignatureVersion: sg.Version, Signature: sg.Value}
	if dataPath == "" && size > 0 {
		o.segments, o.key = t.segments, key
	}

	s.orders = append(s.orders, o)
	idx := len(s.orders) - 1
	s.log.Info().Str("tx", t.id).Str("order", t.orderID).Int64("bytes", size).Msg("ebics sim: order recorded")
	faults := s.faults
	s.ackWG.Add(1)
	go func() {
		defer s.ackWG.Done()
		s.acknowledge(idx, faults)
	}()
	base.OrderID = t.orderID
	b, _ := base.Marshal(s.signKey())
	t.response = b
	t.segSums, t.segments, t.dec, t.key = nil, nil, nil, nil
	return b
}

func validOrderID(id string) bool {
	if len(id) != 4 || id[0] < 'A' || id[0] > 'Z' {
		return false
	}
	for _, c := range id[1:] {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ebicsNS are the request namespaces of the versions the bank speaks, by
// the root's Version attribute.
var ebicsNS = map[string]string{"H004": "urn:org:ebics:H004", "H005": "urn:org:ebics:H005"}

// transferRequest reads a transfer or receipt request (an ebicsRequest
// whose header carries a TransactionID) from the simulator's own parse of
// it: such requests are mostly order data (a segment of up to 1 MB), and
// reading them from the tree X002 is verified on parses each once.
// Everything else goes to protocol.ParseRequest (ok false). The fields read
// are those the transfer phase uses; a malformed one is an error, answered
// as ParseRequest's are (091010).
func transferRequest(root *xnode) (req *protocol.Request, ok bool, err error) {
	if root.local != protocol.KindRequest {
		return nil, false, nil
	}
	ver, _ := root.attr("Version")
	ns := ebicsNS[ver]
	if ns == "" || root.space() != ns {
		return nil, false, nil // ParseRequest names the fault
	}
	header := root.child(ns, "header")
	st, mut := header.childOrNil(ns, "static"), header.childOrNil(ns, "mutable")
	if st == nil || mut == nil {
		return nil, false, nil
	}
	txt := func(n *xnode, local string) string {
		if c := n.childOrNil(ns, local); c != nil {
			return strings.TrimSpace(c.textContent())
		}
		return ""
	}
	r := &protocol.Request{Kind: protocol.KindRequest, Version: protocol.Version(ver), TransactionID: txt(st, "TransactionID")}
	if r.TransactionID == "" {
		return nil, false, nil // an initialisation
	}
	r.HostID = txt(st, "HostID")
	r.Phase = txt(mut, "TransactionPhase")
	if sn := mut.childOrNil(ns, "SegmentNumber"); sn != nil {
		n, err := strconv.Atoi(strings.TrimSpace(sn.textContent()))
		if err != nil || n < 1 {
			return nil, true, fmt.Errorf("SegmentNumber %q", sn.textContent())
		}
		last, _ := sn.attr("lastSegment")
		r.SegmentNumber, r.LastSegment = n, last == "true"
	}
	body := root.child(ns, "body")
	if body == nil {
		return nil, true, errors.New("missing body")
	}
	if tr := body.child(ns, "TransferReceipt"); tr != nil {
		n, err := strconv.Atoi(txt(tr, "ReceiptCode"))
		if err != nil {
			return nil, true, errors.New("ReceiptCode")
		}
		r.HasReceipt, r.ReceiptCode = true, n
	}
	if dt := body.child(ns, "DataTransfer"); dt != nil {
		r.OrderData = txt(dt, "OrderData")
	}
	return r, true, nil
}
