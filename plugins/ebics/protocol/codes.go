package protocol

import (
	"errors"
	"fmt"
)

// CodeInfo describes one EBICS return code.
type CodeInfo struct {
	Code string // six digits, e.g. "091103"
	Name string // the spec's symbolic name, e.g. "EBICS_TX_MESSAGE_REPLAY"
	// Business is set for codes of the business (order) level, returned in
	// the body; technical codes come in the header.
	Business bool
	Text     string // human explanation
}

// The return codes of EBICS 2.5 / 3.0 (annex 1 of the specification).
var codeTable = []CodeInfo{
	{"000000", "EBICS_OK", false, "no error"},
	{"011000", "EBICS_DOWNLOAD_POSTPROCESS_DONE", false, "the positive receipt was received and processed by the bank"},
	{"011001", "EBICS_DOWNLOAD_POSTPROCESS_SKIPPED", false, "the negative receipt was received; the bank skips post-processing and will deliver the data again"},
	{"011101", "EBICS_TX_SEGMENT_NUMBER_UNDERRUN", false, "the last segment was announced before all announced segments were sent"},
	{"031001", "EBICS_ORDER_PARAMS_IGNORED", false, "order parameters not supported by the bank were ignored"},
	{"061001", "EBICS_AUTHENTICATION_FAILED", false, "the bank could not verify the authentication signature (X002)"},
	{"061002", "EBICS_INVALID_REQUEST", false, "the request does not conform to the EBICS schema"},
	{"061099", "EBICS_INTERNAL_ERROR", false, "internal error at the bank; try again later"},
	{"061101", "EBICS_TX_RECOVERY_SYNC", false, "transaction recovery: resume from the segment the bank names"},
	{"091002", "EBICS_INVALID_USER_OR_USER_STATE", false, "the subscriber is unknown or not in a state that allows this order"},
	{"091003", "EBICS_USER_UNKNOWN", false, "the subscriber is unknown to the bank"},
	{"091004", "EBICS_INVALID_USER_STATE", false, "the subscriber's state does not allow this order (e.g. not yet initialised)"},
	{"091005", "EBICS_INVALID_ORDER_TYPE", false, "the order type is unknown"},
	{"091006", "EBICS_UNSUPPORTED_ORDER_TYPE", false, "the order type is not supported by this bank"},
	{"091007", "EBICS_DISTRIBUTED_SIGNATURE_AUTHORISATION_FAILED", false, "the subscriber may not use the distributed signature"},
	{"091008", "EBICS_BANK_PUBKEY_UPDATE_REQUIRED", false, "the bank's public keys changed: download them again (HPB)"},
	{"091009", "EBICS_SEGMENT_SIZE_EXCEEDED", false, "a segment is larger than the bank accepts"},
	{"091010", "EBICS_INVALID_XML", false, "the XML is not valid against the EBICS schema"},
	{"091011", "EBICS_INVALID_HOST_ID", false, "the HostID is unknown to the bank"},
	{"091101", "EBICS_TX_UNKNOWN_TXID", false, "the transaction ID is unknown to the bank"},
	{"091102", "EBICS_TX_ABORT", false, "the bank aborted the transaction"},
	{"091103", "EBICS_TX_MESSAGE_REPLAY", false, "the nonce or timestamp shows a replayed request"},
	{"091104", "EBICS_TX_SEGMENT_NUMBER_EXCEEDED", false, "the segment number is higher than announced"},
	{"091112", "EBICS_INVALID_ORDER_PARAMS", false, "the order parameters are invalid"},
	{"091113", "EBICS_INVALID_REQUEST_CONTENT", false, "the request content is inconsistent (e.g. bad transaction key, bad order data)"},
	{"091117", "EBICS_MAX_ORDER_DATA_SIZE_EXCEEDED", false, "the order data is larger than the bank accepts"},
	{"091118", "EBICS_MAX_SEGMENTS_EXCEEDED", false, "too many segments for this bank"},
	{"091119", "EBICS_MAX_TRANSACTIONS_EXCEEDED", false, "too many open transactions at the bank"},
	{"091120", "EBICS_PARTNER_ID_MISMATCH", false, "the PartnerID of the ES does not match the request's"},
	{"091121", "EBICS_INCOMPATIBLE_ORDER_ATTRIBUTE", false, "the order attribute is not compatible with the order"},
	{"091219", "EBICS_CERTIFICATES_VALIDATION_ERROR", false, "the bank could not validate the subscriber's certificates"},
	// business codes
	{"090003", "EBICS_AUTHORISATION_ORDER_TYPE_FAILED", true, "the subscriber may not submit orders of this type"},
	{"090004", "EBICS_INVALID_ORDER_DATA_FORMAT", true, "the order data does not have the expected format"},
	{"090005", "EBICS_NO_DOWNLOAD_DATA_AVAILABLE", true, "no data is available for download (nothing new)"},
	{"090006", "EBICS_UNSUPPORTED_REQUEST_FOR_ORDER_INSTANCE", true, "this request is not supported for the order instance"},
	{"091105", "EBICS_RECOVERY_NOT_SUPPORTED", true, "the bank does not support transaction recovery"},
	{"091111", "EBICS_INVALID_SIGNATURE_FILE_FORMAT", true, "the signature file does not have the expected format"},
	{"091114", "EBICS_ORDERID_UNKNOWN", true, "the order ID is unknown"},
	{"091115", "EBICS_ORDERID_ALREADY_EXISTS", true, "an order with this order ID already exists"},
	{"091116", "EBICS_PROCESSING_ERROR", true, "the bank failed to process the order"},
	{"091201", "EBICS_KEYMGMT_UNSUPPORTED_VERSION_SIGNATURE", true, "unsupported signature key version"},
	{"091202", "EBICS_KEYMGMT_UNSUPPORTED_VERSION_AUTHENTICATION", true, "unsupported authentication key version"},
	{"091203", "EBICS_KEYMGMT_UNSUPPORTED_VERSION_ENCRYPTION", true, "unsupported encryption key version"},
	{"091204", "EBICS_KEYMGMT_KEYLENGTH_ERROR_SIGNATURE", true, "signature key length not accepted"},
	{"091205", "EBICS_KEYMGMT_KEYLENGTH_ERROR_AUTHENTICATION", true, "authentication key length not accepted"},
	{"091206", "EBICS_KEYMGMT_KEYLENGTH_ERROR_ENCRYPTION", true, "encryption key length not accepted"},
	{"091207", "EBICS_KEYMGMT_NO_X509_SUPPORT", true, "the bank does not support X.509 data"},
	{"091208", "EBICS_X509_CERTIFICATE_EXPIRED", true, "the certificate has expired"},
	{"091209", "EBICS_X509_CERTIFICATE_NOT_VALID_YET", true, "the certificate is not valid yet"},
	{"091210", "EBICS_X509_WRONG_KEY_USAGE", true, "the certificate's key usage is wrong"},
	{"091211", "EBICS_X509_WRONG_ALGORITHM", true, "the certificate's algorithm is not accepted"},
	{"091212", "EBICS_X509_INVALID_THUMBPRINT", true, "the certificate thumbprint is invalid"},
	{"091213", "EBICS_X509_CTL_INVALID", true, "the certificate trust list is invalid"},
	{"091214", "EBICS_X509_UNKNOWN_CERTIFICATE_AUTHORITY", true, "the certificate authority is unknown"},
	{"091215", "EBICS_X509_INVALID_POLICY", true, "the certificate policy is invalid"},
	{"091216", "EBICS_X509_INVALID_BASIC_CONSTRAINTS", true, "the certificate's basic constraints are invalid"},
	{"091217", "EBICS_ONLY_X509_SUPPORT", true, "the bank accepts keys only with X.509 certificates"},
	{"091218", "EBICS_KEYMGMT_DUPLICATE_KEY", true, "the same key was sent for two purposes"},
	{"091301", "EBICS_SIGNATURE_VERIFICATION_FAILED", true, "the electronic signature (ES) could not be verified"},
	{"091302", "EBICS_ACCOUNT_AUTHORISATION_FAILED", true, "the signer is not authorised for the account"},
	{"091303", "EBICS_AMOUNT_CHECK_FAILED", true, "the signer's amount limit is exceeded"},
	{"091304", "EBICS_SIGNER_UNKNOWN", true, "the signer is unknown"},
	{"091305", "EBICS_INVALID_SIGNER_STATE", true, "the signer's state does not allow signing"},
	{"091306", "EBICS_DUPLICATE_SIGNATURE", true, "the signer already signed this order"},
}

var codes = func() map[string]CodeInfo {
	m := make(map[string]CodeInfo, len(codeTable))
	for _, c := range codeTable {
		m[c.Code] = c
	}
	return m
}()

// Return codes used by name in the code.
const (
	CodeOK                   = "000000"
	CodePostprocessDone      = "011000"
	CodePostprocessSkipped   = "011001"
	CodeAuthenticationFailed = "061001"
	CodeInvalidRequest       = "061002"
	CodeInternalError        = "061099"
	CodeTxRecoverySync       = "061101"
	CodeInvalidUserOrState   = "091002"
	CodeUserUnknown          = "091003"
	CodeInvalidUserState     = "091004"
	CodeUnsupportedOrderType = "091006"
	CodeBankPubkeyUpdate     = "091008"
	CodeSegmentSizeExceeded  = "091009"
	CodeInvalidXML           = "091010"
	CodeInvalidHostID        = "091011"
	CodeTxUnknownTxID        = "091101"
	CodeTxAbort              = "091102"
	CodeTxMessageReplay      = "091103"
	CodeTxSegmentExceeded    = "091104"
	CodeInvalidOrderParams   = "091112"
	CodeInvalidRequestContnt = "091113"
	CodeMaxSegmentsExceeded  = "091118"
	CodePartnerIDMismatch    = "091120"
	CodeNoDownloadData       = "090005"
	CodeInvalidOrderData     = "090004"
	CodeOrderIDExists        = "091115"
	CodeProcessingError      = "091116"
	CodeCertExpired          = "091208"
	CodeOnlyX509             = "091217"
	CodeSignatureFailed      = "091301"
)

// LookupCode returns the table entry for code; unknown codes get a generic
// entry.
func LookupCode(code string) CodeInfo {
	if c, ok := codes[code]; ok {
		return c
	}
	return CodeInfo{Code: code, Name: "EBICS_UNKNOWN_CODE", Text: "return code not in the EBICS table"}
}

// Codes returns the whole table (for documentation and tests).
func Codes() []CodeInfo { return append([]CodeInfo(nil), codeTable...) }

// Error is an EBICS return code other than success, as a typed error.
type Error struct {
	CodeInfo
	ReportText string // what the bank wrote
	Phase      string // where it happened (e.g. "FUL Initialisation")
}

// Error implements error.
func (e *Error) Error() string {
	kind := "technical"
	if e.Business {
		kind = "business"
	}
	s := fmt.Sprintf("ebics %s code %s %s: %s", kind, e.Code, e.Name, e.Text)
	if e.ReportText != "" {
		s += " (bank: " + e.ReportText + ")"
	}
	if e.Phase != "" {
		s = e.Phase + ": " + s
	}
	return s
}

// Is matches another *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// IsOK reports whether code means success (including the receipt codes
// 011000 and 011001 and the warning 031001).
func IsOK(code string) bool {
	switch code {
	case "", CodeOK, CodePostprocessDone, CodePostprocessSkipped, "031001":
		return true
	}
	return false
}

// CodeError returns nil for a success code and an *Error otherwise.
func CodeError(code, report, phase string) error {
	if IsOK(code) {
		return nil
	}
	return &Error{CodeInfo: LookupCode(code), ReportText: report, Phase: phase}
}

// E builds a sentinel *Error for errors.Is comparisons.
func E(code string) *Error { return &Error{CodeInfo: LookupCode(code)} }

// HasCode reports whether err carries the EBICS code.
func HasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
