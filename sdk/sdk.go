// Package sdk is what a bank plugin author reads to write an acquit plugin:
// the Go interfaces for the two plugin kinds, the types that cross the
// process boundary, the errors with a meaning on both sides, and the
// ServeConfig a plugin's main hands to pluginrpc.Serve.
//
// A plugin is an executable started by the acquit daemon with
// hashicorp/go-plugin over gRPC. It implements PaymentGateway (card payments:
// Atos/Worldline Sips, Worldline Direct, ...) or BankTransport (file transfer
// with a bank: EBICS, ...), and serves it from main:
//
//	func main() { pluginrpc.Serve(sdk.ServeConfig{Gateway: atos.New()}) }
//
// The gRPC plumbing (handshake, shims, conversions, the daemon-side clients)
// lives in the sub-package pluginrpc; a plugin calls only its Serve. The
// conformance kit sdk/plugintest checks a plugin through that real transport.
//
// A plugin must write its logs to stderr only: anything on stdout breaks the
// go-plugin handshake.
//
// The wire protocol is versioned by ProtocolVersion, which the handshake
// checks before any call. Fields are only ever added; a change that breaks
// older plugins bumps ProtocolVersion. The proto package keeps its name,
// acquit.plugin.v1, across protocol versions (a rename would change every
// gRPC method name and guard nothing the handshake does not; see
// docs/architecture.md).
package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ProtocolVersion is the plugin protocol version negotiated in the handshake.
const ProtocolVersion = 2

// Kind names the plugin kinds the daemon knows.
type Kind string

// The plugin kinds.
const (
	KindPaymentGateway Kind = "payment_gateway"
	KindBankTransport  Kind = "bank_transport"
)

// Info is what a plugin says about itself.
type Info struct {
	Name    string // short name, e.g. "atos"
	Version string // the plugin's own version, e.g. "1.2.0"
	Kind    Kind
	// ConfigSchema is a JSON Schema (as text) of the plugin's settings block.
	ConfigSchema string
	// Jobs lists the schedule jobs the plugin offers, e.g. "reconcile";
	// the daemon exposes them as "<name>.<job>".
	Jobs []string
}

// Plugin is what every plugin implements, whatever its kind.
type Plugin interface {
	// Describe returns the plugin's name, version, kind and config schema.
	Describe(ctx context.Context) (Info, error)
	// Configure hands the plugin its settings block (JSON, with secrets
	// already resolved by the daemon) and a Host for durable state. It is
	// called once after start and again on every reload; an error keeps the
	// previous configuration in force.
	Configure(ctx context.Context, settings []byte, host Host) error
	// Health reports whether the plugin can do its work (nil) or not.
	Health(ctx context.Context) error
}

// Host is what the daemon offers a plugin: durable state kept in the daemon's
// store (SQLite or PostgreSQL), so a plugin needs no database of its own and
// its state survives a crash of either process.
type Host interface {
	// StateGet returns the value stored under key and its version; a missing
	// key returns (nil, 0, nil).
	StateGet(ctx context.Context, key string) (value []byte, version int64, err error)
	// StatePut stores value under key if the key's current version equals
	// version (0: the key must not exist). It returns the new version, or
	// ErrConflict.
	StatePut(ctx context.Context, key string, value []byte, version int64) (int64, error)
	// NextSequence returns the next value (starting at 1) of the named
	// counter; values are never handed out twice.
	NextSequence(ctx context.Context, name string) (int64, error)
}

// Limits the daemon enforces on Host calls from a plugin.
const (
	MaxStateKeyLen   = 256     // bytes of a state key or sequence name
	MaxStateValueLen = 1 << 20 // bytes of a state value
)

// ErrConflict is returned by Host.StatePut when the version does not match.
var ErrConflict = errors.New("state version conflict")

// ---------------------------------------------------------------------------
// Payment gateways

// PaymentGateway is a card-payment provider: it builds the request that sends
// the customer to the provider's payment page, verifies the notifications the
// provider sends back, and answers questions about a transaction.
type PaymentGateway interface {
	Plugin
	// InitPayment builds what the shop shows the customer to start paying.
	InitPayment(ctx context.Context, req PaymentRequest) (*PaymentInit, error)
	// VerifyNotification checks a notification received on the public
	// listener (seal, merchant, key version) and decodes it. It returns a
	// *RejectError when the notification must not be trusted.
	VerifyNotification(ctx context.Context, n Notification) (*PaymentResult, error)
	// QueryTransaction asks the provider for the state of a transaction.
	// A transaction the provider never saw returns Outcome NotFound.
	QueryTransaction(ctx context.Context, q TransactionQuery) (*PaymentResult, error)
}

// PaymentRequest is the shop's request to start a payment.
type PaymentRequest struct {
	Merchant      string // merchant account name from the plugin settings ("" = default)
	Reference     string // unique reference allocated by the daemon (alphanumeric, <= 35)
	OrderID       string
	Amount        int64  // minor units
	Currency      string // ISO 4217 alphabetic, e.g. "EUR"
	CustomerID    string
	CustomerEmail string
	Locale        string
	// AutomaticURL and ManualURL are acquit's public URLs for the
	// server-to-server notification and the customer's return.
	AutomaticURL string
	ManualURL    string
	Extra        map[string]string
}

// PaymentInit is what the shop shows the customer.
type PaymentInit struct {
	// Reference is how the provider's notifications will name the payment
	// (may differ from the requested one, e.g. a legacy 6-digit id).
	Reference string
	// TransactionDate is the provider's date of the reference (YYYYMMDD), for
	// references unique per day only.
	TransactionDate string
	Merchant        string
	RedirectURL     string
	Method          string            // "POST" or "GET"
	Fields          map[string]string // form fields to post to RedirectURL
	// Raw holds provider-specific data the daemon stores with the payment
	// (e.g. the request Data), for audit.
	Raw map[string]string
}

// Channel says how a payment result reached acquit.
type Channel string

// The channels.
const (
	ChannelAutomatic      Channel = "automatic"      // server-to-server notification
	ChannelManual         Channel = "manual"         // the customer's browser returning
	ChannelReconciliation Channel = "reconciliation" // acquit asked the provider
)

// Notification is an HTTP request received on the public listener, as
// received.
type Notification struct {
	Channel    Channel
	Method     string
	Path       string
	Query      string
	Headers    map[string][]string
	Body       []byte
	RemoteAddr string
	ReceivedAt time.Time
}

// Outcome is a payment's outcome.
type Outcome string

// The outcomes.
const (
	OutcomeAccepted  Outcome = "accepted"
	OutcomeRefused   Outcome = "refused"
	OutcomeCancelled Outcome = "cancelled" // by the customer
	OutcomeFailed    Outcome = "failed"    // technical failure, final
	OutcomePending   Outcome = "pending"   // not final: ask again later
	OutcomeExpired   Outcome = "expired"   // abandoned: the provider never saw it
	OutcomeNotFound  Outcome = "not_found" // provider does not know the transaction
)

// Final reports whether an outcome ends a payment.
func (o Outcome) Final() bool {
	switch o {
	case OutcomeAccepted, OutcomeRefused, OutcomeCancelled, OutcomeFailed, OutcomeExpired:
		return true
	}
	return false
}

// PaymentResult is a verified statement by the provider about a payment.
type PaymentResult struct {
	Merchant             string
	Reference            string
	TransactionDate      string // YYYYMMDD where references are unique per day
	Amount               int64
	Currency             string
	Outcome              Outcome
	ResponseCode         string
	AcquirerResponseCode string
	// AskLater is set when the provider's answer is not final and it should
	// be asked again (e.g. Sips 60, 90, 99, 94).
	AskLater bool
	// Explanation is a human sentence about the codes.
	Explanation     string
	AuthorisationID string
	KeyVersion      string
	// Fields holds every field the provider sent, decoded.
	Fields map[string]string
	// Operation is set when the statement is (also) about a later operation
	// on the payment: a capture, a refund, or the merchant cancelling the
	// authorisation. Outcome still says what the payment itself was decided
	// as (accepted for all three), so a lone operation statement can decide
	// a payment whose first answer was lost; the daemon records each
	// operation status once and emits its event, never a second decision.
	Operation *Operation
}

// Operation kinds.
const (
	OperationCapture = "capture"
	OperationRefund  = "refund"
	OperationCancel  = "cancel" // the merchant cancelled the authorisation (void)
)

// Operation statuses.
const (
	OperationDone    = "done"
	OperationPending = "pending" // not final: the provider will say more
	OperationRefused = "refused"
)

// Operation is a later operation on a payment, as the provider reported it.
type Operation struct {
	// ID is the provider's id of the operation (Worldline Direct:
	// paymentid_operationid); statuses of one ID are recorded once each.
	ID       string
	Kind     string // OperationCapture, OperationRefund or OperationCancel
	Status   string // OperationDone, OperationPending or OperationRefused
	Amount   int64  // minor units; 0 = not said
	Currency string
}

// TransactionQuery asks about one transaction.
type TransactionQuery struct {
	Merchant        string
	Reference       string
	TransactionDate string
}

// RejectError says a notification or answer must not be trusted: forged
// seal, unknown key version, unknown merchant, malformed body...
type RejectError struct {
	Code    string // stable, for metrics: "bad_seal", "unknown_key_version", ...
	Message string
}

// Error implements error.
func (e *RejectError) Error() string { return fmt.Sprintf("rejected (%s): %s", e.Code, e.Message) }

// Reject builds a *RejectError.
func Reject(code, format string, args ...any) error {
	return &RejectError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ---------------------------------------------------------------------------
// Bank transports

// BankTransport moves files to and from a bank (EBICS, ...).
type BankTransport interface {
	Plugin
	// Upload sends one file. It must be idempotent on req.TransmissionID:
	// called again after a crash, it resumes or recovers the same order and
	// never creates a second order at the bank for one file.
	Upload(ctx context.Context, req UploadRequest, progress func(sent, total int64)) (*UploadResult, error)
	// Download fetches files of one kind (statements, acknowledgements...).
	// Returned documents are not yet confirmed to the bank: the daemon
	// stores them durably, then calls Confirm.
	Download(ctx context.Context, req DownloadRequest) (*DownloadResult, error)
	// Confirm tells the bank a download was stored (EBICS receipt code 0)
	// or not (ok=false), so it is delivered again.
	Confirm(ctx context.Context, bank, downloadID string, ok bool) error
	// Keys runs one key-management operation (see KeyAction); an
	// operation the plugin does not offer returns ErrUnsupported.
	Keys(ctx context.Context, req KeyRequest) (*KeyResult, error)
}

// UploadRequest asks for one file to be sent.
type UploadRequest struct {
	Bank           string
	TransmissionID string // the daemon's stable id for this file
	Function       string // business function in the bank profile: "sct", "sdd", ...
	Path           string // file on local disk, readable by the plugin
	SHA256         string // hex digest of the file; a plugin refuses (Reject) a file that differs, before sending
	Size           int64
	// Params carries what the daemon read from the file at submission, so
	// a plugin need not parse it again: "msg_id", "nb_of_txs" (the number
	// of transactions found) and "ctrl_sum".
	Params map[string]string
}

// UploadResult says what the bank recorded.
type UploadResult struct {
	OrderID       string
	TransactionID string
	Segments      int
	// Resumed is set when the upload continued an interrupted one.
	Resumed bool
	// ReturnCode and ReturnText are the bank's final answer, or a code
	// of the plugin's own when it could not hear one and will not send
	// the file again (the EBICS plugin's "spool_lost"): the daemon records
	// the upload as submitted and its acknowledgement deadline decides.
	ReturnCode string
	ReturnText string
	Details    map[string]string
}

// DownloadRequest asks for documents of one kind.
type DownloadRequest struct {
	Bank     string
	Function string // "psr", "hac", "ptk", "statement", ...
	From, To time.Time
	Params   map[string]string
	// SpoolDir is a directory the daemon created for this call only (mode
	// 0700, removed after the call's documents are stored). A plugin writes
	// each document it returns as a new regular file directly in it (not
	// in a sub-directory, not a symlink), syncs it, and returns its path in
	// Document.Path: documents of any size then go to the daemon without
	// crossing the RPC or being held in memory. Empty when the caller
	// offers no directory (a test calling the plugin directly): use
	// Document.Content then.
	SpoolDir string
	// MaxSize is the largest document the daemon stores (0: no limit). A
	// plugin should stop writing and fail a download that grows past it,
	// rather than fill the disk: the daemon refuses it anyway.
	MaxSize int64
	// ReportTooLarge says the caller understands Document.TooLarge: a
	// plugin then reports a document over MaxSize as such instead of
	// failing the download (which a caller without it still gets).
	ReportTooLarge bool
}

// DownloadResult carries what the bank delivered; NoData is set when the
// bank had nothing new (EBICS 090005), which is not an error.
type DownloadResult struct {
	NoData    bool
	Documents []Document
}

// Document is one downloaded file. It comes either as a file (Path, with
// Size and SHA256) or as bytes (Content), never both:
//
//   - Path: the rule for documents of any size. The file must be a regular
//     file written directly in DownloadRequest.SpoolDir and synced; the
//     daemon refuses a path anywhere else, a symlink, or a file whose size
//     or SHA-256 differ from Size and SHA256 (it then confirms the download
//     negatively, so the bank delivers it again).
//   - Content: for small documents only. The whole DownloadResult travels
//     as one RPC message of at most 64 MiB (pluginrpc.MaxMessageSize), so a
//     larger document fails every time it is fetched. Plugins written
//     before SpoolDir existed keep working this way.
//
// The daemon owns the file once Download returns: it reads it, stores it
// and removes it; the plugin must not touch it afterwards.
type Document struct {
	DownloadID string // pass to Confirm
	Function   string
	Format     string // e.g. "pain.002.001.03", "ptk-text", "zip"
	Name       string
	Content    []byte
	Meta       map[string]string
	// Path is the document's file in DownloadRequest.SpoolDir.
	Path string
	// Size is the file's length in bytes (required with Path).
	Size int64
	// SHA256 is the file's SHA-256, hex (required with Path; optional with
	// Content, checked when set).
	SHA256 string
	// TooLarge reports a document over DownloadRequest.MaxSize (only when
	// DownloadRequest.ReportTooLarge is set): the plugin stopped reading
	// it and hands over no Path and no Content; Size is the bytes counted
	// before stopping (a lower bound, over MaxSize). DownloadID, Function,
	// Format and Meta are set, so the daemon can record the refusal and
	// Confirm the download.
	TooLarge bool
}

// KeyAction names a key-management operation of BankTransport.Keys. The
// operations, their parameters (KeyRequest.Params) and results are all
// listed here; a transport answers ErrUnsupported for one it lacks.
type KeyAction string

// The key-management operations.
const (
	// KeyInit generates the subscriber's keys (signature, authentication,
	// encryption) and stores them sealed. Params: "force"="true" replaces
	// existing keys. Status "generated".
	KeyInit KeyAction = "init"
	// KeyLetter writes the initialisation letter with the key hashes.
	// Params: "language" (en, fr, de). Files: "letter.pdf", "letter.txt".
	KeyLetter KeyAction = "letter"
	// KeySend sends the public keys to the bank (EBICS INI and HIA).
	// Status "sent".
	KeySend KeyAction = "send"
	// KeyFetchBankKeys downloads the bank's keys (EBICS HPB) and checks
	// them against the hashes from the bank's letter. Status "ready", or
	// "unverified" with Meta "bank_auth_hash" and "bank_enc_hash" to
	// compare and configure.
	KeyFetchBankKeys KeyAction = "fetch-bank-keys"
	// KeyStatus reports the subscriber's key and onboarding state in Meta.
	KeyStatus KeyAction = "status"
	// KeyImportCert attaches a certificate to one key. Params: "key"
	// (signature, authentication, encryption), "cert_pem". Status
	// "imported".
	KeyImportCert KeyAction = "import-cert"
	// KeyCheckProfile checks that the bank offers every order type of
	// the bank's profile (EBICS HAA). Status "profile_ok", or
	// "profile_mismatch" with Meta "missing".
	KeyCheckProfile KeyAction = "check-profile"
)

// KeyRequest is a key-management operation.
type KeyRequest struct {
	Bank   string
	Action KeyAction
	Params map[string]string
}

// KeyResult is the outcome of a key-management action.
type KeyResult struct {
	Status string
	Text   string            // human-readable output (a letter, a status table)
	Files  map[string][]byte // e.g. "letter.pdf"
	Meta   map[string]string
}

// JobRunner is implemented by plugins that offer schedule jobs (Info.Jobs).
type JobRunner interface {
	// RunJob runs the named job with its parameters and returns a summary.
	RunJob(ctx context.Context, job string, params map[string]string) (string, error)
}
