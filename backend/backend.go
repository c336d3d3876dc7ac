// Package backend defines the mail store as EAS needs it, independent of the
// protocol that reaches it. The gateway's commands speak only to these
// interfaces; backend/imapstore implements them over IMAP and
// backend/smtpsend implements sending over SMTP.
package backend

import (
	"context"
	"errors"
)

// ErrAuthFailed reports that the mail server refused the user's credentials.
// The phone sees HTTP 401; the log gets the wrapped cause.
var ErrAuthFailed = errors.New("backend: authentication failed")

// ErrUnavailable reports that the mail server could not be reached or failed
// in a way that retrying later may fix. The phone sees 503 with Retry-After
// (or the in-body status 111 from 14.0).
var ErrUnavailable = errors.New("backend: mail server unavailable")

// Authenticator checks a user's credentials against the mail server.
type Authenticator interface {
	// Authenticate returns nil when the server accepts user and password,
	// an error wrapping ErrAuthFailed when it refuses them, and an error
	// wrapping ErrUnavailable when it cannot tell.
	Authenticate(ctx context.Context, user, password string) error
}
