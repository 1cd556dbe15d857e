package sim

// Subscribers and key management: INI, HIA, HPB, the onboarding states
// and the freshness (nonce, timestamp) checks of signed requests.

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// AddSubscriber declares a subscriber (state "new"), as the bank does when
// the contract is signed.
func (s *Sim) AddSubscriber(partnerID, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[partnerID+"/"+userID] = &subscriber{partner: partnerID, user: userID, state: StateNew, orderIDs: map[string]bool{}}
}

// Activate moves an initialised subscriber to ready (letter checked).
func (s *Sim) Activate(partnerID, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs[partnerID+"/"+userID]
	if sub == nil || sub.state != StateInitialised {
		return fmt.Errorf("ebics sim: subscriber %s/%s not initialised", partnerID, userID)
	}
	sub.state = StateReady
	return nil
}

// State returns a subscriber's state ("" if unknown).
func (s *Sim) State(partnerID, userID string) SubscriberState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub := s.subs[partnerID+"/"+userID]; sub != nil {
		return sub.state
	}
	return ""
}

// BankPublicKeys returns the bank's X002 and E002 public keys (to verify
// its responses with another implementation).
func (s *Sim) BankPublicKeys() (auth, enc *rsa.PublicKey) {
	return &s.authKey.Private.PublicKey, &s.encKey.Private.PublicKey
}

// SubscriberKeys returns the public keys a subscriber sent with INI and
// HIA (nil when not received yet).
func (s *Sim) SubscriberKeys(partnerID, userID string) (sig, auth, enc *protocol.PubKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub := s.subs[partnerID+"/"+userID]; sub != nil {
		return sub.sig, sub.auth, sub.enc
	}
	return nil, nil, nil
}

// BankKeyHashes returns the digests of the bank's X002 and E002 keys as
// its letter shows them for version v.
func (s *Sim) BankKeyHashes(v protocol.Version) (auth, enc []byte) {
	return s.authKey.Pub().Digest(v), s.encKey.Pub().Digest(v)
}

// checkFresh enforces the timestamp window and refuses replayed nonces
// (091103 EBICS_TX_MESSAGE_REPLAY).
func (s *Sim) checkFresh(req *protocol.Request) string {
	now := time.Now()
	if req.Nonce == "" || len(req.Nonce) != 32 || req.Timestamp.IsZero() {
		return protocol.CodeInvalidRequest
	}
	if d := now.Sub(req.Timestamp); d > s.cfg.ClockSkew || d < -s.cfg.ClockSkew {
		return protocol.CodeTxMessageReplay
	}
	key := req.PartnerID + "/" + req.UserID + "/" + strings.ToUpper(req.Nonce)
	if _, seen := s.nonces[key]; seen {
		return protocol.CodeTxMessageReplay
	}
	for k, t := range s.nonces {
		if now.Sub(t) > 2*s.cfg.ClockSkew {
			delete(s.nonces, k)
		}
	}
	s.nonces[key] = now
	return ""
}

func (s *Sim) keyMgmt(req *protocol.Request) []byte {
	v := req.Version
	km := protocol.KindKeyManagementResp
	sub := s.subs[req.PartnerID+"/"+req.UserID]
	if sub == nil {
		return s.errorResponse(v, km, protocol.CodeUserUnknown, "")
	}
	raw, err := protocol.DecodeBase64(req.OrderData)
	if err != nil {
		return s.errorResponse(v, km, protocol.CodeInvalidOrderData, err.Error())
	}
	data, err := protocol.Inflate(raw, 1<<20)
	if err != nil {
		return s.errorResponse(v, km, protocol.CodeInvalidOrderData, err.Error())
	}
	kod, err := protocol.ParseKeyOrderData(data)
	var kl *protocol.KeyLengthError
	if errors.As(err, &kl) {
		code := map[string]string{"INI": "091204", "HIA": "091205"}[req.OrderType]
		return s.errorResponse(v, km, code, err.Error())
	}
	if err != nil {
		return s.errorResponse(v, km, protocol.CodeInvalidOrderData, err.Error())
	}
	if kod.PartnerID != req.PartnerID || kod.UserID != req.UserID {
		return s.errorResponse(v, km, protocol.CodePartnerIDMismatch, "order data names another subscriber")
	}
	needCert := s.cfg.RequireCertificates || v == protocol.H005
	check := func(k *protocol.PubKey, versions ...string) string {
		ok := false
		for _, x := range versions {
			ok = ok || k.Version == x
		}
		if !ok {
			return map[string]string{"A": "091201", "X": "091202", "E": "091203"}[versions[0][:1]]
		}
		if needCert && k.Cert == nil {
			return protocol.CodeOnlyX509
		}
		if k.Cert != nil {
			now := time.Now()
			if now.After(k.Cert.NotAfter) {
				return protocol.CodeCertExpired
			}
			if now.Before(k.Cert.NotBefore) {
				return "091209"
			}
		}
		return ""
	}
	switch req.OrderType {
	case "INI":
		if kod.Signature == nil {
			return s.errorResponse(v, km, protocol.CodeInvalidOrderData, "INI without signature key")
		}
		if sub.state != StateNew {
			return s.errorResponse(v, km, protocol.CodeInvalidUserState, "INI already received")
		}
		if c := check(kod.Signature, protocol.A005, protocol.A006); c != "" {
			return s.errorResponse(v, km, c, "")
		}
		sub.sig = kod.Signature
		sub.state = StateINI
	case "HIA":
		if kod.Auth == nil || kod.Enc == nil {
			return s.errorResponse(v, km, protocol.CodeInvalidOrderData, "HIA without keys")
		}
		if sub.state != StateINI && sub.state != StateNew {
			return s.errorResponse(v, km, protocol.CodeInvalidUserState, "HIA already received")
		}
		if c := check(kod.Auth, "X002"); c != "" {
			return s.errorResponse(v, km, c, "")
		}
		if c := check(kod.Enc, "E002"); c != "" {
			return s.errorResponse(v, km, c, "")
		}
		sub.auth, sub.enc = kod.Auth, kod.Enc
		if sub.state == StateINI {
			sub.state = StateInitialised
			if !s.cfg.ManualActivation {
				sub.state = StateReady
			}
		} else {
			sub.state = StateNew // HIA first: wait for INI
		}
	default:
		return s.errorResponse(v, km, protocol.CodeUnsupportedOrderType, req.OrderType)
	}
	s.log.Info().Str("partner", req.PartnerID).Str("user", req.UserID).Str("order", req.OrderType).Str("state", string(sub.state)).Msg("ebics sim: key management")
	resp := &protocol.Response{Version: v, Kind: km, TechCode: protocol.CodeOK}
	b, _ := resp.Marshal(nil)
	return b
}

// hpb serves the bank's public keys to a subscriber the bank has
// activated (state ready): before the bank checked the letter, the keys it
// would sign responses for are not trusted yet, and HPB is refused with
// 091002 EBICS_INVALID_USER_OR_USER_STATE, the code banks use for key
// management requests in a state that does not allow them.
func (s *Sim) hpb(req *protocol.Request, tree *xnode) []byte {
	v := req.Version
	km := protocol.KindKeyManagementResp
	sub := s.subs[req.PartnerID+"/"+req.UserID]
	if sub == nil {
		return s.errorResponse(v, km, protocol.CodeUserUnknown, "")
	}
	if sub.auth == nil || sub.state != StateReady {
		s.log.Warn().Str("partner", req.PartnerID).Str("user", req.UserID).Str("state", string(sub.state)).Msg("ebics sim: HPB refused, subscriber not activated")
		return s.errorResponse(v, km, protocol.CodeInvalidUserOrState, "subscriber "+string(sub.state)+", not ready")
	}
	if err := verifyX002Tree(tree, sub.auth.Key); err != nil {
		s.log.Warn().Err(err).Str("partner", req.PartnerID).Msg("ebics sim: HPB authentication failed")
		return s.errorResponse(v, km, protocol.CodeAuthenticationFailed, err.Error())
	}
	if c := s.checkFresh(req); c != "" {
		return s.errorResponse(v, km, c, "")
	}
	if req.OrderType != "HPB" {
		return s.errorResponse(v, km, protocol.CodeUnsupportedOrderType, req.OrderType)
	}
	od, err := protocol.HPBResponseOrderData(v, s.authKey.Pub(), s.encKey.Pub(), s.cfg.HostID)
	if err != nil {
		return s.errorResponse(v, km, protocol.CodeInternalError, err.Error())
	}
	key := protocol.NewTransactionKey()
	enc, _ := protocol.EncryptE002(key, protocol.Deflate(od))
	wrapped, err := protocol.WrapKey(sub.enc.Key, key)
	if err != nil {
		return s.errorResponse(v, km, protocol.CodeInternalError, err.Error())
	}
	resp := &protocol.Response{Version: v, Kind: km, TechCode: protocol.CodeOK, EncKeyHash: sub.enc.Digest(v),
		TransactionKey: wrapped, OrderData: b64(enc)}
	b, _ := resp.Marshal(nil)
	return b
}
