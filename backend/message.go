package backend

import "time"

// UID is a message's IMAP UID in its folder (RFC 9051 2.3.1.1); 0 is no
// message.
type UID uint32

// Summary is what Sync needs to describe a message without reading its
// body: the envelope, the flags, the arrival date, the size and the MIME
// structure (to pick a body part and list attachments).
type Summary struct {
	UID UID
	// Flags are the message's flags and keywords, e.g. "\Seen", "$Forwarded".
	Flags []string
	// Received is the arrival date (IMAP INTERNALDATE): email:DateReceived.
	Received time.Time
	// Size is the size of the whole message in bytes.
	Size int64
	// Envelope holds the parsed main headers.
	Envelope Envelope
	// Structure is the message's MIME tree (IMAP BODYSTRUCTURE).
	Structure *BodyPart
}

// Envelope is the parsed main headers of a message (IMAP ENVELOPE).
// Strings are decoded to UTF-8 where the server or the MIME word decoder
// could.
type Envelope struct {
	Date      time.Time
	Subject   string
	From      []Address
	Sender    []Address
	ReplyTo   []Address
	To        []Address
	Cc        []Address
	Bcc       []Address
	InReplyTo []string // message IDs without angle brackets
	MessageID string   // without angle brackets
}

// Address is one mailbox in an address header.
type Address struct {
	Name    string // display name, may be empty
	Mailbox string // local part
	Host    string // domain
}

// Addr returns "mailbox@host", or just the mailbox when there is no host.
func (a Address) Addr() string {
	if a.Host == "" {
		return a.Mailbox
	}
	return a.Mailbox + "@" + a.Host
}

// BodyPart is one node of a message's MIME tree (IMAP BODYSTRUCTURE).
type BodyPart struct {
	// Path is the IMAP section number: "1", "1.2"; "" for the top of a
	// single-part message's root ("1" addresses its body).
	Path string
	// Type and Subtype in lower case, e.g. "text", "html"; "multipart",
	// "mixed".
	Type, Subtype string
	// Params are the Content-Type parameters, keys in lower case.
	Params map[string]string
	// Children are the parts of a multipart.
	Children []*BodyPart

	// The fields below are for leaf parts.

	// ID is the Content-ID without angle brackets.
	ID string
	// Description is the Content-Description.
	Description string
	// Encoding is the Content-Transfer-Encoding in lower case.
	Encoding string
	// Size is the encoded size of the part's body in bytes.
	Size int64
	// Disposition is "inline", "attachment" or "" (lower case).
	Disposition string
	// DispositionParams are the Content-Disposition parameters, keys in
	// lower case (e.g. "filename").
	DispositionParams map[string]string
	// Location is the Content-Location.
	Location string
	// Message is the embedded message of a message/rfc822 part.
	Message *Summary
}

// Filename returns the part's file name from the Content-Disposition
// filename or, failing that, the Content-Type name parameter.
func (p *BodyPart) Filename() string {
	if name := p.DispositionParams["filename"]; name != "" {
		return name
	}
	return p.Params["name"]
}

// Walk calls f for p and each part below it, depth first, parents first,
// and stops when f returns false.
func (p *BodyPart) Walk(f func(*BodyPart) bool) bool {
	if !f(p) {
		return false
	}
	for _, c := range p.Children {
		if !c.Walk(f) {
			return false
		}
	}
	return true
}
