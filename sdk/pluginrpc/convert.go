package pluginrpc

import (
	"fmt"
	"time"

	"github.com/acquit/acquit/sdk"
	pluginv1 "github.com/acquit/acquit/sdk/proto/acquit/plugin/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Conversions between the sdk types and their wire messages. Decoding of
// messages that come from the other process validates what the sdk types
// promise (known kinds and outcomes).

func tsFrom(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func tsTo(ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp: %w", err)
	}
	return ts.AsTime(), nil
}

func infoToWire(i sdk.Info) *pluginv1.DescribeResponse {
	return &pluginv1.DescribeResponse{
		Name: i.Name, Version: i.Version, Kind: string(i.Kind),
		ConfigSchema: i.ConfigSchema, Jobs: i.Jobs,
	}
}

// ErrBadInfo is returned when a plugin describes itself with an unknown
// kind or an empty name.
var ErrBadInfo = fmt.Errorf("bad plugin description")

func infoFromWire(r *pluginv1.DescribeResponse) (sdk.Info, error) {
	k := sdk.Kind(r.GetKind())
	if k != sdk.KindPaymentGateway && k != sdk.KindBankTransport {
		return sdk.Info{}, fmt.Errorf("%w: unknown kind %q", ErrBadInfo, clip(r.GetKind()))
	}
	if r.GetName() == "" {
		return sdk.Info{}, fmt.Errorf("%w: empty name", ErrBadInfo)
	}
	return sdk.Info{
		Name: r.GetName(), Version: r.GetVersion(), Kind: k,
		ConfigSchema: r.GetConfigSchema(), Jobs: r.GetJobs(),
	}, nil
}

func paymentRequestToWire(r sdk.PaymentRequest) *pluginv1.PaymentRequest {
	return &pluginv1.PaymentRequest{
		Merchant: r.Merchant, Reference: r.Reference,
		OrderId: r.OrderID, Amount: r.Amount, Currency: r.Currency,
		CustomerId: r.CustomerID, CustomerEmail: r.CustomerEmail, Locale: r.Locale,
		AutomaticUrl: r.AutomaticURL, ManualUrl: r.ManualURL, Extra: r.Extra,
	}
}

func paymentRequestFromWire(r *pluginv1.PaymentRequest) sdk.PaymentRequest {
	return sdk.PaymentRequest{
		Merchant: r.GetMerchant(), Reference: r.GetReference(),
		OrderID: r.GetOrderId(), Amount: r.GetAmount(), Currency: r.GetCurrency(),
		CustomerID: r.GetCustomerId(), CustomerEmail: r.GetCustomerEmail(), Locale: r.GetLocale(),
		AutomaticURL: r.GetAutomaticUrl(), ManualURL: r.GetManualUrl(), Extra: r.GetExtra(),
	}
}

func paymentInitToWire(p *sdk.PaymentInit) *pluginv1.PaymentInit {
	return &pluginv1.PaymentInit{
		Reference: p.Reference, TransactionDate: p.TransactionDate, Merchant: p.Merchant,
		RedirectUrl: p.RedirectURL, Method: p.Method, Fields: p.Fields, Raw: p.Raw,
	}
}

func paymentInitFromWire(p *pluginv1.PaymentInit) *sdk.PaymentInit {
	return &sdk.PaymentInit{
		Reference: p.GetReference(), TransactionDate: p.GetTransactionDate(), Merchant: p.GetMerchant(),
		RedirectURL: p.GetRedirectUrl(), Method: p.GetMethod(), Fields: p.GetFields(), Raw: p.GetRaw(),
	}
}

func notificationToWire(n sdk.Notification) *pluginv1.Notification {
	var h map[string]*pluginv1.HeaderValues
	if len(n.Headers) > 0 {
		h = make(map[string]*pluginv1.HeaderValues, len(n.Headers))
		for k, v := range n.Headers {
			h[k] = &pluginv1.HeaderValues{Values: v}
		}
	}
	return &pluginv1.Notification{
		Channel: string(n.Channel), Method: n.Method, Path: n.Path, Query: n.Query,
		Headers: h, Body: n.Body, RemoteAddr: n.RemoteAddr, ReceivedAt: tsFrom(n.ReceivedAt),
	}
}

func notificationFromWire(n *pluginv1.Notification) (sdk.Notification, error) {
	at, err := tsTo(n.GetReceivedAt())
	if err != nil {
		return sdk.Notification{}, fmt.Errorf("notification received_at: %w", err)
	}
	var h map[string][]string
	if len(n.GetHeaders()) > 0 {
		h = make(map[string][]string, len(n.GetHeaders()))
		for k, v := range n.GetHeaders() {
			h[k] = v.GetValues()
		}
	}
	return sdk.Notification{
		Channel: sdk.Channel(n.GetChannel()), Method: n.GetMethod(), Path: n.GetPath(), Query: n.GetQuery(),
		Headers: h, Body: n.GetBody(), RemoteAddr: n.GetRemoteAddr(), ReceivedAt: at,
	}, nil
}

// ErrBadResult is returned when a plugin answers with a result the daemon
// cannot trust (an unknown outcome).
var ErrBadResult = fmt.Errorf("bad plugin result")

func knownOutcome(o sdk.Outcome) bool {
	switch o {
	case sdk.OutcomeAccepted, sdk.OutcomeRefused, sdk.OutcomeCancelled, sdk.OutcomeFailed,
		sdk.OutcomePending, sdk.OutcomeExpired, sdk.OutcomeNotFound:
		return true
	}
	return false
}

func paymentResultToWire(r *sdk.PaymentResult) *pluginv1.PaymentResult {
	return &pluginv1.PaymentResult{
		Merchant: r.Merchant, Reference: r.Reference, TransactionDate: r.TransactionDate,
		Amount: r.Amount, Currency: r.Currency, Outcome: string(r.Outcome),
		ResponseCode: r.ResponseCode, AcquirerResponseCode: r.AcquirerResponseCode,
		AskLater: r.AskLater, Explanation: r.Explanation, AuthorisationId: r.AuthorisationID,
		KeyVersion: r.KeyVersion, Fields: r.Fields, Operation: operationToWire(r.Operation),
	}
}

func operationToWire(o *sdk.Operation) *pluginv1.PaymentOperation {
	if o == nil {
		return nil
	}
	return &pluginv1.PaymentOperation{Id: o.ID, Kind: o.Kind, Status: o.Status, Amount: o.Amount, Currency: o.Currency}
}

func operationFromWire(o *pluginv1.PaymentOperation) (*sdk.Operation, error) {
	if o == nil {
		return nil, nil
	}
	switch o.GetKind() {
	case sdk.OperationCapture, sdk.OperationRefund, sdk.OperationCancel:
	default:
		return nil, fmt.Errorf("%w: unknown operation kind %q", ErrBadResult, clip(o.GetKind()))
	}
	switch o.GetStatus() {
	case sdk.OperationDone, sdk.OperationPending, sdk.OperationRefused:
	default:
		return nil, fmt.Errorf("%w: unknown operation status %q", ErrBadResult, clip(o.GetStatus()))
	}
	if o.GetId() == "" || len(o.GetId()) > 64 {
		return nil, fmt.Errorf("%w: operation id must be 1-64 characters", ErrBadResult)
	}
	return &sdk.Operation{ID: o.GetId(), Kind: o.GetKind(), Status: o.GetStatus(), Amount: o.GetAmount(), Currency: o.GetCurrency()}, nil
}

func paymentResultFromWire(r *pluginv1.PaymentResult) (*sdk.PaymentResult, error) {
	o := sdk.Outcome(r.GetOutcome())
	if !knownOutcome(o) {
		return nil, fmt.Errorf("%w: unknown outcome %q", ErrBadResult, clip(r.GetOutcome()))
	}
	op, err := operationFromWire(r.GetOperation())
	if err != nil {
		return nil, err
	}
	return &sdk.PaymentResult{
		Merchant: r.GetMerchant(), Reference: r.GetReference(), TransactionDate: r.GetTransactionDate(),
		Amount: r.GetAmount(), Currency: r.GetCurrency(), Outcome: o,
		ResponseCode: r.GetResponseCode(), AcquirerResponseCode: r.GetAcquirerResponseCode(),
		AskLater: r.GetAskLater(), Explanation: r.GetExplanation(), AuthorisationID: r.GetAuthorisationId(),
		KeyVersion: r.GetKeyVersion(), Fields: r.GetFields(), Operation: op,
	}, nil
}

func queryToWire(q sdk.TransactionQuery) *pluginv1.TransactionQuery {
	return &pluginv1.TransactionQuery{Merchant: q.Merchant, Reference: q.Reference, TransactionDate: q.TransactionDate}
}

func queryFromWire(q *pluginv1.TransactionQuery) sdk.TransactionQuery {
	return sdk.TransactionQuery{Merchant: q.GetMerchant(), Reference: q.GetReference(), TransactionDate: q.GetTransactionDate()}
}

func uploadRequestToWire(r sdk.UploadRequest) *pluginv1.UploadRequest {
	return &pluginv1.UploadRequest{
		Bank: r.Bank, TransmissionId: r.TransmissionID, Function: r.Function, Path: r.Path,
		Sha256: r.SHA256, Size: r.Size, Params: r.Params,
	}
}

func uploadRequestFromWire(r *pluginv1.UploadRequest) sdk.UploadRequest {
	return sdk.UploadRequest{
		Bank: r.GetBank(), TransmissionID: r.GetTransmissionId(), Function: r.GetFunction(), Path: r.GetPath(),
		SHA256: r.GetSha256(), Size: r.GetSize(), Params: r.GetParams(),
	}
}

func uploadResultToWire(r *sdk.UploadResult) *pluginv1.UploadResult {
	return &pluginv1.UploadResult{
		OrderId: r.OrderID, TransactionId: r.TransactionID, Segments: int32(r.Segments), Resumed: r.Resumed,
		ReturnCode: r.ReturnCode, ReturnText: r.ReturnText, Details: r.Details,
	}
}

func uploadResultFromWire(r *pluginv1.UploadResult) *sdk.UploadResult {
	return &sdk.UploadResult{
		OrderID: r.GetOrderId(), TransactionID: r.GetTransactionId(), Segments: int(r.GetSegments()), Resumed: r.GetResumed(),
		ReturnCode: r.GetReturnCode(), ReturnText: r.GetReturnText(), Details: r.GetDetails(),
	}
}

func downloadRequestToWire(r sdk.DownloadRequest) *pluginv1.DownloadRequest {
	return &pluginv1.DownloadRequest{Bank: r.Bank, Function: r.Function, From: tsFrom(r.From), To: tsFrom(r.To), Params: r.Params,
		SpoolDir: r.SpoolDir, MaxSize: r.MaxSize, ReportTooLarge: r.ReportTooLarge}
}

func downloadRequestFromWire(r *pluginv1.DownloadRequest) (sdk.DownloadRequest, error) {
	from, err := tsTo(r.GetFrom())
	if err != nil {
		return sdk.DownloadRequest{}, fmt.Errorf("download from: %w", err)
	}
	to, err := tsTo(r.GetTo())
	if err != nil {
		return sdk.DownloadRequest{}, fmt.Errorf("download to: %w", err)
	}
	return sdk.DownloadRequest{Bank: r.GetBank(), Function: r.GetFunction(), From: from, To: to, Params: r.GetParams(),
		SpoolDir: r.GetSpoolDir(), MaxSize: r.GetMaxSize(), ReportTooLarge: r.GetReportTooLarge()}, nil
}

func downloadResultToWire(r *sdk.DownloadResult) *pluginv1.DownloadResult {
	out := &pluginv1.DownloadResult{NoData: r.NoData}
	for _, d := range r.Documents {
		out.Documents = append(out.Documents, &pluginv1.Document{
			DownloadId: d.DownloadID, Function: d.Function, Format: d.Format, Name: d.Name,
			Content: d.Content, Meta: d.Meta, Path: d.Path, Size: d.Size, Sha256: d.SHA256, TooLarge: d.TooLarge,
		})
	}
	return out
}

func downloadResultFromWire(r *pluginv1.DownloadResult) *sdk.DownloadResult {
	out := &sdk.DownloadResult{NoData: r.GetNoData()}
	for _, d := range r.GetDocuments() {
		out.Documents = append(out.Documents, sdk.Document{
			DownloadID: d.GetDownloadId(), Function: d.GetFunction(), Format: d.GetFormat(), Name: d.GetName(),
			Content: d.GetContent(), Meta: d.GetMeta(), Path: d.GetPath(), Size: d.GetSize(), SHA256: d.GetSha256(),
			TooLarge: d.GetTooLarge(),
		})
	}
	return out
}

func keyRequestToWire(r sdk.KeyRequest) *pluginv1.KeyRequest {
	return &pluginv1.KeyRequest{Bank: r.Bank, Action: string(r.Action), Params: r.Params}
}

func keyRequestFromWire(r *pluginv1.KeyRequest) sdk.KeyRequest {
	return sdk.KeyRequest{Bank: r.GetBank(), Action: sdk.KeyAction(r.GetAction()), Params: r.GetParams()}
}

func keyResultToWire(r *sdk.KeyResult) *pluginv1.KeyResult {
	return &pluginv1.KeyResult{Status: r.Status, Text: r.Text, Files: r.Files, Meta: r.Meta}
}

func keyResultFromWire(r *pluginv1.KeyResult) *sdk.KeyResult {
	return &sdk.KeyResult{Status: r.GetStatus(), Text: r.GetText(), Files: r.GetFiles(), Meta: r.GetMeta()}
}
