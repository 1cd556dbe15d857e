package direct

import (
	"fmt"
	"strings"

	"github.com/acquit/acquit/internal/boundedre"
)

// AmountOfMoney is an amount in minor units and its ISO 4217 currency.
type AmountOfMoney struct {
	Amount       int64  `json:"amount"`
	CurrencyCode string `json:"currencyCode"`
}

// References are the merchant's references of an order or payment.
type References struct {
	MerchantReference string `json:"merchantReference,omitempty"`
}

// Customer is the part of the order about the customer.
type Customer struct {
	MerchantCustomerID string          `json:"merchantCustomerId,omitempty"`
	Locale             string          `json:"locale,omitempty"`
	ContactDetails     *ContactDetails `json:"contactDetails,omitempty"`
}

// ContactDetails holds the customer's e-mail address.
type ContactDetails struct {
	EmailAddress string `json:"emailAddress,omitempty"`
}

// Order is the order of a hosted checkout.
type Order struct {
	AmountOfMoney AmountOfMoney `json:"amountOfMoney"`
	References    References    `json:"references"`
	Customer      *Customer     `json:"customer,omitempty"`
}

// HostedCheckoutSpecificInput configures the hosted page.
type HostedCheckoutSpecificInput struct {
	ReturnURL      string `json:"returnUrl"`
	Locale         string `json:"locale,omitempty"`
	SessionTimeout int    `json:"sessionTimeout,omitempty"` // minutes
	Variant        string `json:"variant,omitempty"`
}

// CardInput configures card payments.
type CardInput struct {
	AuthorizationMode string `json:"authorizationMode,omitempty"` // SALE, FINAL_AUTHORIZATION, PRE_AUTHORIZATION
}

// CreateHostedCheckoutRequest is the body of CreateHostedCheckout.
type CreateHostedCheckoutRequest struct {
	Order                          Order                       `json:"order"`
	HostedCheckoutSpecificInput    HostedCheckoutSpecificInput `json:"hostedCheckoutSpecificInput"`
	CardPaymentMethodSpecificInput *CardInput                  `json:"cardPaymentMethodSpecificInput,omitempty"`
}

// CreateHostedCheckoutResponse is CreateHostedCheckout's answer. RETURNMAC
// is appended, with hostedCheckoutId, to the returnUrl when the customer
// comes back: keep it to recognise the return.
type CreateHostedCheckoutResponse struct {
	RETURNMAC          string `json:"RETURNMAC"`
	HostedCheckoutID   string `json:"hostedCheckoutId"`
	MerchantReference  string `json:"merchantReference,omitempty"`
	PartialRedirectURL string `json:"partialRedirectUrl,omitempty"`
	RedirectURL        string `json:"redirectUrl"`
}

// Hosted checkout statuses (GetHostedCheckout).
const (
	CheckoutInProgress          = "IN_PROGRESS"
	CheckoutPaymentCreated      = "PAYMENT_CREATED"
	CheckoutCancelledByConsumer = "CANCELLED_BY_CONSUMER"
)

// GetHostedCheckoutResponse is GetHostedCheckout's answer.
type GetHostedCheckoutResponse struct {
	Status               string                `json:"status"`
	CreatedPaymentOutput *CreatedPaymentOutput `json:"createdPaymentOutput,omitempty"`
}

// CreatedPaymentOutput is the payment a hosted checkout created.
type CreatedPaymentOutput struct {
	Payment               *Payment `json:"payment,omitempty"`
	PaymentStatusCategory string   `json:"paymentStatusCategory,omitempty"`
}

// StatusOutput is a payment's or operation's status.
type StatusOutput struct {
	StatusCode     int        `json:"statusCode"`
	StatusCategory string     `json:"statusCategory,omitempty"`
	IsAuthorized   bool       `json:"isAuthorized,omitempty"`
	IsCancellable  bool       `json:"isCancellable,omitempty"`
	IsRefundable   bool       `json:"isRefundable,omitempty"`
	Errors         []APIError `json:"errors,omitempty"`
}

// CardOutput is what a card payment says about the card.
type CardOutput struct {
	PaymentProductID  int    `json:"paymentProductId,omitempty"`
	AuthorisationCode string `json:"authorisationCode,omitempty"`
	Card              *struct {
		CardNumber string `json:"cardNumber,omitempty"` // masked
	} `json:"card,omitempty"`
}

// PaymentOutput is the body of a payment.
type PaymentOutput struct {
	AmountOfMoney                   *AmountOfMoney `json:"amountOfMoney,omitempty"`
	AcquiredAmount                  *AmountOfMoney `json:"acquiredAmount,omitempty"`
	References                      *References    `json:"references,omitempty"`
	PaymentMethod                   string         `json:"paymentMethod,omitempty"`
	CardPaymentMethodSpecificOutput *CardOutput    `json:"cardPaymentMethodSpecificOutput,omitempty"`
}

// HostedCheckoutSpecificOutput names the hosted checkout a payment came
// from.
type HostedCheckoutSpecificOutput struct {
	HostedCheckoutID string `json:"hostedCheckoutId,omitempty"`
}

// Payment is a payment (webhooks, GetHostedCheckout, GetPayment).
type Payment struct {
	ID                           string                        `json:"id"`
	Status                       string                        `json:"status,omitempty"`
	StatusOutput                 *StatusOutput                 `json:"statusOutput,omitempty"`
	PaymentOutput                *PaymentOutput                `json:"paymentOutput,omitempty"`
	HostedCheckoutSpecificOutput *HostedCheckoutSpecificOutput `json:"hostedCheckoutSpecificOutput,omitempty"`
}

// Operation is one operation of a payment (GetPaymentDetails).
type Operation struct {
	ID            string         `json:"id"`
	Status        string         `json:"status,omitempty"`
	StatusOutput  *StatusOutput  `json:"statusOutput,omitempty"`
	AmountOfMoney *AmountOfMoney `json:"amountOfMoney,omitempty"`
}

// PaymentDetails is GetPaymentDetails' answer: the payment and its
// operations.
type PaymentDetails struct {
	Payment
	Operations []Operation `json:"operations,omitempty"`
}

// WebhookEvent is a webhook's body.
type WebhookEvent struct {
	APIVersion string   `json:"apiVersion"`
	ID         string   `json:"id"`
	Created    string   `json:"created"`
	MerchantID string   `json:"merchantId"`
	Type       string   `json:"type"`
	Payment    *Payment `json:"payment,omitempty"`
}

// APIError is one error of an error answer.
type APIError struct {
	Code           string `json:"code,omitempty"`
	ID             string `json:"id,omitempty"`
	Category       string `json:"category,omitempty"`
	Message        string `json:"message,omitempty"`
	PropertyName   string `json:"propertyName,omitempty"`
	HTTPStatusCode int    `json:"httpStatusCode,omitempty"`
}

// ErrorResponse is the body of an error answer.
type ErrorResponse struct {
	ErrorID string     `json:"errorId"`
	Errors  []APIError `json:"errors"`
}

// SplitPaymentID splits "paymentid_operationid": 1-20 digits, '_', 1-10
// digits.
func SplitPaymentID(id string) (payment, operation string, err error) {
	payment, operation, ok := strings.Cut(id, "_")
	if !ok || !rePaymentPart.MatchString(payment) || !reOperationPart.MatchString(operation) {
		return "", "", fmt.Errorf("payment id %q is not <digits>_<digits>", clip(id, 40))
	}
	return payment, operation, nil
}

// The two parts of a payment id, their lengths bounded apart (boundedre).
var (
	rePaymentPart   = boundedre.MustCompile(`^[0-9]*$`, 1, 20)
	reOperationPart = boundedre.MustCompile(`^[0-9]*$`, 1, 10)
)

// ValidCheckoutID reports whether s looks like a hosted checkout id
// (1-64 letters, digits, '-' or '_').
func ValidCheckoutID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_')
	}) < 0
}
