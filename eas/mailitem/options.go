package mailitem

import (
	"strconv"
	"strings"
)

// BodyType is an AirSyncBase body type (MS-ASAIRS 2.2.2.22.1).
type BodyType uint8

// The body types. RTF is never produced; a preference for it is passed
// over.
const (
	BodyPlain BodyType = 1
	BodyHTML  BodyType = 2
	BodyRTF   BodyType = 3
	BodyMIME  BodyType = 4
)

// BodyPreference is one airsyncbase:BodyPreference of a Sync or
// ItemOperations request (MS-ASAIRS 2.2.2.7).
type BodyPreference struct {
	Type BodyType
	// TruncationSize is the most body bytes to send; 0 means the whole
	// body (a client's explicit 0 is treated the same way).
	TruncationSize int64
	// AllOrNone asks for no data at all rather than a truncated body.
	AllOrNone bool
	// Preview is how many characters of plain-text preview to add (14.0+,
	// at most 255); 0 means none.
	Preview int
}

// MIMESupport is the airsync:MIMESupport option (MS-ASCMD 2.2.3.110).
type MIMESupport uint8

// The MIMESupport values.
const (
	MIMENever     MIMESupport = 0 // never send MIME
	MIMESMIMEOnly MIMESupport = 1 // MIME for S/MIME messages only
	MIMEAlways    MIMESupport = 2 // MIME for every message
)

// Options are what the request and the folder decide about an item.
type Options struct {
	// Version is the MS-ASProtocolVersion ("12.1", "14.0", "14.1",
	// "16.0", "16.1"). Elements the version does not know are left out;
	// an unknown version is treated as 12.1.
	Version string
	// BodyPreferences in the client's order; the first one that can be
	// produced is used. None means the whole body as plain text.
	BodyPreferences []BodyPreference
	// MIMESupport: with MIMEAlways, or MIMESMIMEOnly and an S/MIME
	// message, the body is the MIME message (Type 4).
	MIMESupport MIMESupport
	// MIMETruncation is how MIMESupport's MIME body is cut when no
	// BodyPreference of Type 4 says (airsync:MIMETruncation, MS-ASCMD
	// 2.2.3.111): its TruncationSize and AllOrNone. The zero value sends
	// the whole message.
	MIMETruncation BodyPreference
	// Drafts is set when the folder is the Drafts folder: the item is
	// marked IsDraft (16.0+) and carries Bcc.
	Drafts bool
	// FileRef returns the airsyncbase:FileReference for the attachment at
	// the given part path. The gateway decides the format (and makes it
	// unforgeable); nil gives the plain section number ("1.2").
	FileRef func(partPath []int) string
}

// ProtocolVersion returns the protocol version as major*10+minor (121,
// 140, 160...); an unknown version is 121.
func (o *Options) ProtocolVersion() int { return o.version() }

// version returns the protocol version as major*10+minor (121, 140...).
func (o *Options) version() int {
	major, minor, _ := strings.Cut(o.Version, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil || ma < 12 || mi < 0 || mi > 9 {
		return 121
	}
	return ma*10 + mi
}

// fileRef returns the FileReference for an attachment.
func (o *Options) fileRef(path []int) string {
	if o.FileRef != nil {
		return o.FileRef(path)
	}
	return PathString(path)
}
