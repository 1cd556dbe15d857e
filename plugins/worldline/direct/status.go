package direct

import (
	"fmt"
	"sort"

	"github.com/acquit/acquit/sdk"
)

// Interpretation is what acquit makes of a payment status code.
type Interpretation struct {
	Outcome  sdk.Outcome
	AskLater bool
	// OpKind and OpStatus are set when the code reports a later operation
	// on an authorised payment (capture, refund, cancellation).
	OpKind, OpStatus string
	Meaning          string
}

// statusCodes is the statusCode table: Worldline's meaning, then acquit's
// reading. Codes 5 and 9 decide acceptance; the uncertain ones (51, 52, 91,
// 92, 99...) are not final: the platform settles them later on the same
// operation id, and acquit asks again.
var statusCodes = map[int]Interpretation{
	0:  {sdk.OutcomePending, true, "", "", "created (or invalid/incomplete): nothing decided yet"},
	1:  {sdk.OutcomeCancelled, false, "", "", "cancelled by the customer"},
	2:  {sdk.OutcomeRefused, false, "", "", "authorisation refused"},
	4:  {sdk.OutcomePending, true, "", "", "order stored, waiting"},
	5:  {sdk.OutcomeAccepted, false, "", "", "authorised (pending capture)"},
	46: {sdk.OutcomePending, true, "", "", "waiting for authentication (3-D Secure)"},
	50: {sdk.OutcomePending, true, "", "", "authorisation waiting"},
	51: {sdk.OutcomePending, true, "", "", "authorisation waiting (pending at the acquirer)"},
	52: {sdk.OutcomePending, true, "", "", "authorisation not known (uncertain)"},
	55: {sdk.OutcomePending, true, "", "", "standby"},
	56: {sdk.OutcomeAccepted, false, "", "", "authorised with scheduled payments"},
	57: {sdk.OutcomeRefused, false, "", "", "refused with scheduled payments"},
	59: {sdk.OutcomePending, true, "", "", "authorisation to be requested manually"},
	6:  {sdk.OutcomeAccepted, false, sdk.OperationCancel, sdk.OperationDone, "authorised and cancelled by the merchant"},
	61: {sdk.OutcomeAccepted, false, sdk.OperationCancel, sdk.OperationPending, "cancellation of the authorisation waiting"},
	62: {sdk.OutcomeAccepted, false, sdk.OperationCancel, sdk.OperationPending, "cancellation of the authorisation uncertain"},
	63: {sdk.OutcomeAccepted, false, sdk.OperationCancel, sdk.OperationRefused, "cancellation of the authorisation refused"},
	64: {sdk.OutcomeAccepted, false, sdk.OperationCancel, sdk.OperationDone, "authorised and cancelled"},
	7:  {sdk.OutcomeAccepted, false, sdk.OperationCancel, sdk.OperationDone, "payment deleted"},
	71: {sdk.OutcomeAccepted, false, sdk.OperationCancel, sdk.OperationPending, "payment deletion pending"},
	72: {sdk.OutcomeAccepted, false, sdk.OperationCancel, sdk.OperationPending, "payment deletion uncertain"},
	73: {sdk.OutcomeAccepted, false, sdk.OperationCancel, sdk.OperationRefused, "payment deletion refused"},
	74: {sdk.OutcomeAccepted, false, sdk.OperationCancel, sdk.OperationDone, "payment deleted"},
	75: {sdk.OutcomeAccepted, false, sdk.OperationCancel, sdk.OperationDone, "deletion processed by the merchant"},
	8:  {sdk.OutcomeAccepted, false, sdk.OperationRefund, sdk.OperationDone, "refunded"},
	81: {sdk.OutcomeAccepted, false, sdk.OperationRefund, sdk.OperationPending, "refund pending"},
	82: {sdk.OutcomeAccepted, false, sdk.OperationRefund, sdk.OperationPending, "refund uncertain"},
	83: {sdk.OutcomeAccepted, false, sdk.OperationRefund, sdk.OperationRefused, "refund refused"},
	84: {sdk.OutcomeAccepted, false, sdk.OperationRefund, sdk.OperationDone, "refunded"},
	85: {sdk.OutcomeAccepted, false, sdk.OperationRefund, sdk.OperationDone, "refund processed by the merchant"},
	9:  {sdk.OutcomeAccepted, false, sdk.OperationCapture, sdk.OperationDone, "captured (payment requested)"},
	91: {sdk.OutcomePending, true, "", "", "capture processing: not final"},
	92: {sdk.OutcomePending, true, "", "", "payment uncertain: not final"},
	93: {sdk.OutcomeRefused, false, "", "", "capture refused by the acquirer (REJECTED_CAPTURE)"},
	94: {sdk.OutcomeAccepted, false, sdk.OperationRefund, sdk.OperationRefused, "refund declined by the acquirer"},
	95: {sdk.OutcomeAccepted, false, sdk.OperationCapture, sdk.OperationDone, "capture processed by the merchant"},
	96: {sdk.OutcomeAccepted, false, sdk.OperationRefund, sdk.OperationRefused, "refund reversed"},
	99: {sdk.OutcomePending, true, "", "", "being processed"},
}

// Interpret reads a statusCode. A code not in the table is not final
// (pending, ask again later).
func Interpret(code int) Interpretation {
	if in, ok := statusCodes[code]; ok {
		return in
	}
	return Interpretation{Outcome: sdk.OutcomePending, AskLater: true, Meaning: fmt.Sprintf("status code %d unknown to acquit: not final", code)}
}

// StatusCodes lists the table's codes in order (README, tests).
func StatusCodes() []int {
	out := make([]int, 0, len(statusCodes))
	for c := range statusCodes {
		out = append(out, c)
	}
	sort.Ints(out)
	return out
}
