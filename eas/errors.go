package eas

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/easgate/easgate/backend"
)

// Common status codes of MS-ASCMD 2.2.2 ("Common Status Codes"), valid from
// 14.0 in the top-level Status of every command response. Up to 12.1 the
// same conditions are HTTP status lines.
const (
	StatusInvalidContent           = 101 // the body is not what the command takes
	StatusInvalidWBXML             = 102 // the body does not decode as WBXML
	StatusInvalidXML               = 103 // decodes, but is not the command's document
	StatusDeviceIDMissingOrInvalid = 108
	StatusDeviceTypeMissingOrInval = 109
	StatusServerError              = 110
	StatusServerErrorRetryLater    = 111
	StatusAccessDenied             = 130
	StatusCommandNotSupported      = 137
	StatusVersionNotSupported      = 138
	StatusDeviceBlocked            = 129 // DeviceIsBlockedForThisUser
	StatusRemoteWipeRequested      = 140
	StatusDeviceNotProvisioned     = 142
	StatusPolicyRefresh            = 143
	StatusInvalidPolicyKey         = 144
)

// StatusRetryProvision is HTTP 449 "Retry after sending a PROVISION
// command" (MS-ASHTTP 2.2.2.1.1).
const StatusRetryProvision = 449

// RetryAfterSeconds is the Retry-After sent with a 503 (grommunio uses 300;
// a shorter wait brings phones back sooner after a mail-server restart).
const RetryAfterSeconds = 60

// StatusError is an error whose effect on the wire is known. Handlers and
// the framework return it; the server turns it into the response for the
// request's protocol version:
//
//   - From 14.0, when Status is not 0 and the command's response element
//     has a top-level Status, the body is that element holding only the
//     status, e.g. <FolderSync><Status>142</Status></FolderSync>, sent with
//     HTTP BodyHTTP (200 when 0).
//   - Otherwise (up to 12.1, no Status, or a command without a top-level
//     Status) the response is HTTP status HTTP with an empty body.
//
// Cause is for the log only; the phone never sees it.
type StatusError struct {
	HTTP     int // status line up to 12.1, and whenever no body status can be sent
	Status   int // in-body top-level Status from 14.0; 0 for none
	BodyHTTP int // status line sent with an in-body Status; 0 means 200
	Cause    error
}

// Error describes the status and the cause for the log.
func (e *StatusError) Error() string {
	s := "eas: HTTP " + strconv.Itoa(e.HTTP)
	if e.Status != 0 {
		s += ", status " + strconv.Itoa(e.Status)
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *StatusError) Unwrap() error { return e.Cause }

// errBadRequest builds the error for a malformed request: HTTP 400 up to
// 12.1, the given common status from 14.0.
func errBadRequest(status int, cause error) *StatusError {
	return &StatusError{HTTP: http.StatusBadRequest, Status: status, Cause: cause}
}

// errorStatus maps any error to the StatusError the phone is to see: a
// *StatusError as it is; backend.ErrUnavailable as 503 with Retry-After
// (111 from 14.0); backend.ErrAuthFailed (the mail server refused a
// password the cache still held) as 401; anything else as 500 (110 from
// 14.0).
func errorStatus(err error) *StatusError {
	var se *StatusError
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, backend.ErrUnavailable):
		return &StatusError{HTTP: http.StatusServiceUnavailable, Status: StatusServerErrorRetryLater, Cause: err}
	case errors.Is(err, backend.ErrAuthFailed):
		return &StatusError{HTTP: http.StatusUnauthorized, Cause: err}
	}
	return &StatusError{HTTP: http.StatusInternalServerError, Status: StatusServerError, Cause: err}
}
