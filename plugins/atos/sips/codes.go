package sips

import (
	"fmt"
	"sort"

	"github.com/acquit/acquit/sdk"
)

// CodeInfo describes one Sips responseCode: what Sips says, what it means
// for the payment, and whether acquit should ask again later.
type CodeInfo struct {
	Code        string
	Description string // Sips' wording
	Outcome     sdk.Outcome
	AskLater    bool
	// Advice is a sentence for a person reading the payment's timeline.
	Advice string
}

// ResponseCodes is the Sips 2.0 responseCode table (Paypage responses and
// Office). Source: the Sips/Mercanet data dictionary and Worldline's
// published code lists.
var ResponseCodes = map[string]CodeInfo{
	"00": {Description: "Transaction accepted / authorisation accepted", Outcome: sdk.OutcomeAccepted},
	"01": {Description: "Partial success (Office: some operations of the request failed)", Outcome: sdk.OutcomePending, AskLater: true,
		Advice: "not a payment answer: ask Office for the transaction's state"},
	"02": {Description: "Authorisation request to be performed by telephone with the issuer (card threshold exceeded, referral)", Outcome: sdk.OutcomeRefused,
		Advice: "the issuer wants a voice authorisation; online the payment is refused"},
	"03": {Description: "Invalid merchant contract", Outcome: sdk.OutcomeFailed,
		Advice: "the merchantId or its contract is not valid for this payment: check the account configuration with the bank"},
	"04": {Description: "Unknown error", Outcome: sdk.OutcomePending, AskLater: true,
		Advice: "ask Office for the transaction's state"},
	"05": {Description: "Authorisation refused", Outcome: sdk.OutcomeRefused},
	"11": {Description: "Used for deferred check: the PAN is blocked", Outcome: sdk.OutcomeRefused},
	"12": {Description: "Invalid transaction, check the request parameters", Outcome: sdk.OutcomeFailed,
		Advice: "Sips refused acquit's request as invalid: check the plugin settings (capture mode, payment means, currency)"},
	"14": {Description: "Invalid PAN or payment mean data (e.g. card security code)", Outcome: sdk.OutcomeRefused},
	"17": {Description: "Cancelled by the customer", Outcome: sdk.OutcomeCancelled},
	"24": {Description: "Operation not authorised: not compliant with the transaction's status (or request already carried out)", Outcome: sdk.OutcomePending, AskLater: true,
		Advice: "ask Office for the transaction's state"},
	"25": {Description: "Transaction unknown by Sips", Outcome: sdk.OutcomeNotFound,
		Advice: "Sips never saw the transaction: the customer most likely abandoned before paying"},
	"30": {Description: "Format error", Outcome: sdk.OutcomeFailed,
		Advice: "Sips could not read acquit's request: check the interface version and field formats"},
	"34": {Description: "Fraud suspicion (seal erroneous)", Outcome: sdk.OutcomeFailed,
		Advice: "Sips could not verify the seal of acquit's request: this is almost always a wrong secret key or keyVersion on our side (a key rotation done on one side only), rarely real fraud"},
	"40": {Description: "Function not supported: the operation is not part of the merchant's contract", Outcome: sdk.OutcomeFailed,
		Advice: "the payment mean or capture mode asked for is not in the contract"},
	"51": {Description: "Amount too high", Outcome: sdk.OutcomeRefused},
	"54": {Description: "Payment mean expiry date is past", Outcome: sdk.OutcomeRefused},
	"55": {Description: "Merchant does not accept prepaid cards", Outcome: sdk.OutcomeRefused},
	"57": {Description: "Refund refused: the original transaction was subject to an unpaid", Outcome: sdk.OutcomeRefused},
	"60": {Description: "Transaction pending", Outcome: sdk.OutcomePending, AskLater: true,
		Advice: "not final: ask Office later"},
	"62": {Description: "Waiting for the confirmation of the transaction", Outcome: sdk.OutcomePending, AskLater: true,
		Advice: "not final: ask Office later"},
	"63": {Description: "Security rules not observed, transaction stopped", Outcome: sdk.OutcomeRefused,
		Advice: "stopped by Sips' risk rules or a failed 3-D Secure authentication"},
	"75": {Description: "Number of attempts to enter the payment mean data exceeded", Outcome: sdk.OutcomeRefused},
	"90": {Description: "Service temporarily not available", Outcome: sdk.OutcomePending, AskLater: true,
		Advice: "platform trouble at Sips: ask Office later whether the payment went through"},
	"94": {Description: "Duplicated transaction: the transactionReference has been used previously", Outcome: sdk.OutcomePending, AskLater: true,
		Advice: "the reference was already used: ask Office whether the first attempt went through; this response says nothing about it"},
	"97": {Description: "Session expired (no action from the customer within the time frame), transaction refused", Outcome: sdk.OutcomeExpired,
		Advice: "the customer left the payment page without paying"},
	"99": {Description: "Temporary problem at the Sips server", Outcome: sdk.OutcomePending, AskLater: true,
		Advice: "platform trouble at Sips: ask Office later whether the payment went through"},
}

// AcquirerCodes explains the acquirerResponseCode values (the card
// network's answer, relayed by Sips).
var AcquirerCodes = map[string]string{
	"00": "approved",
	"02": "contact the card issuer",
	"03": "invalid acceptor",
	"04": "keep the card (card blocked)",
	"05": "do not honour",
	"07": "keep the card, special conditions",
	"08": "approve after identification",
	"12": "invalid transaction",
	"13": "invalid amount",
	"14": "invalid card number",
	"15": "unknown card issuer",
	"17": "payment aborted by the customer",
	"20": "invalid response (error in the server domain)",
	"24": "file update not supported",
	"25": "transaction not found",
	"26": "duplicate record",
	"27": "file update edit error",
	"28": "file locked",
	"29": "file update failed",
	"30": "format error",
	"31": "acquirer id unknown",
	"33": "card expired",
	"34": "fraud suspicion",
	"38": "too many PIN attempts",
	"41": "card lost",
	"43": "card stolen",
	"51": "insufficient funds or credit limit exceeded",
	"54": "card expired",
	"55": "wrong PIN",
	"56": "card not in the issuer's file",
	"57": "transaction not allowed for this cardholder",
	"58": "transaction not allowed for this terminal",
	"59": "fraud suspicion",
	"60": "card acceptor must contact the acquirer",
	"61": "amount limit exceeded",
	"62": "restricted card",
	"63": "security rules not observed",
	"65": "number of transactions exceeded",
	"68": "response received too late",
	"75": "too many PIN attempts",
	"76": "cardholder already in opposition",
	"77": "card data mismatch",
	"78": "card not yet active",
	"80": "contactless not allowed",
	"81": "strong customer authentication required",
	"82": "invalid or missing CVV",
	"83": "card not active",
	"87": "PIN check failed",
	"88": "security check failed",
	"89": "invalid or missing cryptogram",
	"90": "system temporarily unavailable",
	"91": "card issuer unreachable",
	"92": "routing error",
	"94": "duplicate transaction",
	"96": "system malfunction",
	"97": "global surveillance time-out",
	"98": "server unavailable, network routing requested again",
	"99": "initiating domain incident",
	"A1": "strong customer authentication (3-D Secure) required by the issuer",
	"A4": "misuse of the SCA exemption (TRA)",
	"R0": "stop payment order (recurring payment revoked)",
	"R1": "stop all recurring payments for this merchant",
	"R3": "revocation of all authorisations",
}

// lostStolen lists acquirer codes that mean "do not retry this card".
var lostStolen = map[string]bool{"04": true, "07": true, "34": true, "41": true, "43": true, "59": true}

// Interpretation is what a pair of codes means for a payment.
type Interpretation struct {
	Outcome     sdk.Outcome
	AskLater    bool
	Explanation string
}

// Interpret maps a Sips responseCode (and the acquirerResponseCode, which
// may be empty) to an outcome. An unknown responseCode is not final: the
// payment is pending and Office should be asked later.
func Interpret(responseCode, acquirerCode string) Interpretation {
	info, ok := ResponseCodes[responseCode]
	if !ok {
		return Interpretation{
			Outcome:     sdk.OutcomePending,
			AskLater:    true,
			Explanation: fmt.Sprintf("Sips responseCode %q is not in acquit's table: treated as not final, ask Office later", clip(responseCode, 8)),
		}
	}
	expl := fmt.Sprintf("Sips %s: %s", responseCode, info.Description)
	if info.Advice != "" {
		expl += " (" + info.Advice + ")"
	}
	if acquirerCode != "" && (info.Outcome != sdk.OutcomeAccepted || acquirerCode != "00") {
		if txt, ok := AcquirerCodes[acquirerCode]; ok {
			expl += fmt.Sprintf("; acquirer %s: %s", acquirerCode, txt)
		} else {
			expl += fmt.Sprintf("; acquirer code %q (unknown)", clip(acquirerCode, 8))
		}
		if info.Outcome == sdk.OutcomeRefused && lostStolen[acquirerCode] {
			expl += "; do not let the customer retry with this card"
		}
	}
	return Interpretation{Outcome: info.Outcome, AskLater: info.AskLater, Explanation: expl}
}

// SortedResponseCodes returns the responseCode table in code order, for
// documentation.
func SortedResponseCodes() []CodeInfo {
	out := make([]CodeInfo, 0, len(ResponseCodes))
	for c, info := range ResponseCodes {
		info.Code = c
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// TransactionStatus is an Office transactionStatus value mapped to an
// outcome.
type TransactionStatus struct {
	Outcome     sdk.Outcome
	AskLater    bool
	Description string
}

// TransactionStatuses maps Office (getTransactionData) transactionStatus
// values. A status not listed is "still unknown, ask again later".
var TransactionStatuses = map[string]TransactionStatus{
	"TO_AUTHORIZE":         {sdk.OutcomePending, true, "authorisation deferred (capture day beyond the authorisation validity): not yet authorised"},
	"TO_VALIDATE":          {sdk.OutcomeAccepted, false, "authorised, waiting for the merchant's validation (capture mode VALIDATION)"},
	"TO_CAPTURE":           {sdk.OutcomeAccepted, false, "authorised, to be captured at the capture day"},
	"CAPTURED":             {sdk.OutcomeAccepted, false, "authorised and captured"},
	"TO_CREDIT":            {sdk.OutcomeAccepted, false, "paid, a refund is scheduled"},
	"CREDITED":             {sdk.OutcomeAccepted, false, "paid, then refunded"},
	"TO_CHALLENGE":         {sdk.OutcomePending, true, "held by Sips' fraud rules for the merchant's review"},
	"PENDING":              {sdk.OutcomePending, true, "pending at Sips"},
	"WAITING_AUTHOR":       {sdk.OutcomePending, true, "waiting for the authorisation"},
	"REFUSED":              {sdk.OutcomeRefused, false, "refused"},
	"REFUSED_BY_ACQUIRER":  {sdk.OutcomeRefused, false, "refused by the acquirer"},
	"CANCELLED":            {sdk.OutcomeCancelled, false, "cancelled"},
	"ABORTED":              {sdk.OutcomeCancelled, false, "aborted by the customer on the payment page"},
	"EXPIRED":              {sdk.OutcomeExpired, false, "expired (session or authorisation)"},
	"CAPTURE_REFUSED":      {sdk.OutcomeRefused, false, "capture refused"},
	"UNDEFINED":            {sdk.OutcomePending, true, "undefined at Sips"},
	"FAILED":               {sdk.OutcomeFailed, false, "failed"},
	"TO_REPLAY":            {sdk.OutcomePending, true, "to be replayed by Sips"},
	"NOT_SENT":             {sdk.OutcomePending, true, "not yet sent to the acquirer"},
	"TO_CAPTURE_PARTIALLY": {sdk.OutcomeAccepted, false, "authorised, to be partly captured"},
}

// InterpretStatus maps an Office transactionStatus.
func InterpretStatus(status, acquirerCode string) Interpretation {
	st, ok := TransactionStatuses[status]
	if !ok {
		return Interpretation{Outcome: sdk.OutcomePending, AskLater: true,
			Explanation: fmt.Sprintf("Office transactionStatus %q is not in acquit's table: still unknown, ask again later", clip(status, 32))}
	}
	expl := fmt.Sprintf("Office transactionStatus %s: %s", status, st.Description)
	if acquirerCode != "" && st.Outcome == sdk.OutcomeRefused {
		if txt, ok := AcquirerCodes[acquirerCode]; ok {
			expl += fmt.Sprintf("; acquirer %s: %s", acquirerCode, txt)
		}
	}
	return Interpretation{Outcome: st.Outcome, AskLater: st.AskLater, Explanation: expl}
}
