package eas

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Query is what the request line and headers of an EAS POST say: the
// command, who and which device, in which protocol version, with which
// policy key and parameters (MS-ASHTTP 2.2.1.1.1 and 2.2.1.1.2).
type Query struct {
	// Command is the command name as in the plain query's Cmd= value, e.g.
	// "FolderSync"; for the base64 form it is the name of the command code.
	Command string
	// User is the plain query's User= value, or the base64 parameter 8;
	// "" when absent (the base64 form usually has none).
	User string
	// DeviceID is the DeviceId, lower-cased (the digest §1.2, as Z-Push).
	// A binary base64 DeviceId is hex-encoded.
	DeviceID string
	// DeviceType is the DeviceType as sent, e.g. "iPhone".
	DeviceType string
	// Version is the protocol version: the MS-ASProtocolVersion header of
	// the plain form or the first byte of the base64 form, e.g. "14.1".
	Version string
	// PolicyKey is the X-MS-PolicyKey header or the base64 PolicyKey field;
	// 0 when absent. A header that is not a number counts as absent.
	PolicyKey uint32
	// Locale is the Windows LCID of the base64 form (0 for the plain form).
	Locale uint16
	// Params are the command parameters.
	Params Params
	// SaveInSent is SaveInSent=T, or the base64 Options bit 0x01.
	SaveInSent bool
	// AcceptMultiPart is the MS-ASAcceptMultiPart: T header, or the base64
	// Options bit 0x02 (MS-ASHTTP 2.2.1.1.2.4).
	AcceptMultiPart bool
	// Base64 reports that the query came in the base64 form.
	Base64 bool
}

// Params are the command parameters of the query (MS-ASHTTP 2.2.1.1.1.1.3
// for the base64 tags, 2.2.1.1.1.2 for the plain names).
type Params struct {
	AttachmentName string // tag 0, AttachmentName=
	CollectionID   string // tag 1, CollectionId=
	CollectionName string // tag 2 (deprecated)
	ItemID         string // tag 3, ItemId=
	LongID         string // tag 4, LongId=
	ParentID       string // tag 5 (deprecated)
	Occurrence     string // tag 6, Occurrence=
}

// QueryError is a request line the server cannot use. Field names what is
// wrong ("Cmd", "DeviceId", "DeviceType", "MS-ASProtocolVersion", "query");
// the phone sees HTTP 400 or, from 14.0 where the command is known, the
// matching common status (108 for DeviceId, 109 for DeviceType).
type QueryError struct {
	Field string
	Msg   string
}

func (e *QueryError) Error() string { return "eas: bad query: " + e.Field + ": " + e.Msg }

// Base64 parameter tags, MS-ASHTTP 2.2.1.1.1.1.3; tag 8 (User) is Z-Push's.
const (
	paramAttachmentName = 0
	paramCollectionID   = 1
	paramCollectionName = 2
	paramItemID         = 3
	paramLongID         = 4
	paramParentID       = 5
	paramOccurrence     = 6
	paramOptions        = 7
	paramUser           = 8
)

// Options bits of base64 parameter 7 (MS-ASHTTP 2.2.1.1.1.1.3).
const (
	optionSaveInSent      = 0x01
	optionAcceptMultiPart = 0x02
)

// maxIDLen bounds DeviceId and DeviceType. MS-ASHTTP allows 32 characters;
// clients exist that send a little more, so the gateway is lenient up to
// 64 and refuses beyond (a hex-encoded binary DeviceId of 32 bytes fits).
const maxIDLen = 64

// ParseQuery reads the query of an EAS POST in either form. The plain form
// (Cmd=…&User=…&DeviceId=…&DeviceType=…) is recognised by its Cmd
// parameter; otherwise the whole query must be one base64 value (MS-ASHTTP
// 2.2.1.1.1.1). Headers supply the version, policy key and
// MS-ASAcceptMultiPart for the plain form, and the policy key for a base64
// query that carries none.
//
// On error the returned Query holds whatever could be read (the command and
// version above all, so that the error can be answered in the command's
// own terms) and the error is a *QueryError.
func ParseQuery(rawQuery string, h http.Header) (*Query, error) {
	q := &Query{}
	if v, err := url.ParseQuery(rawQuery); err == nil && v.Has("Cmd") {
		return q, q.parsePlain(v, h)
	}
	if rawQuery == "" {
		return q, &QueryError{"Cmd", "missing"}
	}
	b, ok := decodeBase64Query(rawQuery)
	if !ok {
		return q, &QueryError{"Cmd", "missing, and the query is not base64"}
	}
	q.Base64 = true
	err := q.parseBase64(b)
	if err == nil && q.PolicyKey == 0 {
		q.PolicyKey = headerPolicyKey(h)
	}
	return q, err
}

func (q *Query) parsePlain(v url.Values, h http.Header) error {
	q.Command = v.Get("Cmd")
	q.User = v.Get("User")
	q.DeviceID = strings.ToLower(v.Get("DeviceId"))
	q.DeviceType = v.Get("DeviceType")
	q.Version = strings.TrimSpace(h.Get("MS-ASProtocolVersion"))
	q.PolicyKey = headerPolicyKey(h)
	q.AcceptMultiPart = strings.EqualFold(strings.TrimSpace(h.Get("MS-ASAcceptMultiPart")), "T")
	q.SaveInSent = strings.EqualFold(v.Get("SaveInSent"), "T")
	q.Params = Params{
		AttachmentName: v.Get("AttachmentName"),
		CollectionID:   v.Get("CollectionId"),
		CollectionName: v.Get("CollectionName"),
		ItemID:         v.Get("ItemId"),
		LongID:         v.Get("LongId"),
		ParentID:       v.Get("ParentId"),
		Occurrence:     v.Get("Occurrence"),
	}
	return q.check()
}

// check validates the fields both forms share.
func (q *Query) check() error {
	switch {
	case q.Command == "":
		return &QueryError{"Cmd", "missing"}
	case q.Version == "":
		return &QueryError{"MS-ASProtocolVersion", "missing"}
	}
	if err := checkID("DeviceId", q.DeviceID); err != nil {
		return err
	}
	return checkID("DeviceType", q.DeviceType)
}

// checkID accepts printable ASCII without spaces, up to maxIDLen bytes.
// MS-ASHTTP asks for alphanumerics only, but real clients have sent '-' and
// '_', and refusing them would lock those phones out for no gain.
func checkID(field, s string) error {
	if s == "" {
		return &QueryError{field, "missing"}
	}
	if len(s) > maxIDLen {
		return &QueryError{field, fmt.Sprintf("longer than %d characters", maxIDLen)}
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return &QueryError{field, "not printable ASCII"}
		}
	}
	return nil
}

// headerPolicyKey reads X-MS-PolicyKey; absent or not a 32-bit number is 0.
func headerPolicyKey(h http.Header) uint32 {
	n, err := strconv.ParseUint(strings.TrimSpace(h.Get("X-MS-PolicyKey")), 10, 32)
	if err != nil {
		return 0
	}
	return uint32(n)
}

// decodeBase64Query decodes the base64 query. Clients send standard base64
// with '+' and '/', sometimes percent-encoded and sometimes without
// padding; all are accepted.
func decodeBase64Query(raw string) ([]byte, bool) {
	s, err := url.PathUnescape(raw)
	if err != nil {
		return nil, false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// errShort is the cause of every truncated base64 query.
var errShort = errors.New("ends early")

// base64Reader walks the decoded bytes of a base64 query.
type base64Reader struct {
	b   []byte
	err error
}

func (r *base64Reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.err = errShort
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *base64Reader) bytes(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = errShort
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

// parseBase64 decodes the binary layout of MS-ASHTTP 2.2.1.1.1.1:
// version, command code, locale, DeviceId, PolicyKey, DeviceType and
// tag-length-value parameters.
func (q *Query) parseBase64(b []byte) error {
	r := &base64Reader{b: b}
	if v := r.byte(); r.err == nil {
		q.Version = fmt.Sprintf("%d.%d", v/10, v%10)
	}
	code := r.byte()
	if r.err != nil {
		return &QueryError{"query", "base64 query " + errShort.Error()}
	}
	c, ok := commandByCode(code)
	if !ok {
		return &QueryError{"Cmd", fmt.Sprintf("unknown base64 command code %d", code)}
	}
	q.Command = c.Name
	if p := r.bytes(2); r.err == nil {
		q.Locale = binary.LittleEndian.Uint16(p)
	}
	q.DeviceID = strings.ToLower(deviceIDString(r.bytes(int(r.byte()))))
	switch n := r.byte(); {
	case r.err != nil:
	case n == 4:
		if p := r.bytes(4); r.err == nil {
			q.PolicyKey = binary.LittleEndian.Uint32(p)
		}
	case n != 0:
		return &QueryError{"query", fmt.Sprintf("PolicyKey length %d, want 0 or 4", n)}
	}
	q.DeviceType = string(r.bytes(int(r.byte())))
	if r.err != nil {
		return &QueryError{"query", "base64 query " + r.err.Error()}
	}
	for len(r.b) > 0 {
		tag := r.byte()
		val := r.bytes(int(r.byte()))
		if r.err != nil {
			return &QueryError{"query", fmt.Sprintf("base64 parameter %d %v", tag, r.err)}
		}
		switch tag {
		case paramAttachmentName:
			q.Params.AttachmentName = string(val)
		case paramCollectionID:
			q.Params.CollectionID = string(val)
		case paramCollectionName:
			q.Params.CollectionName = string(val)
		case paramItemID:
			q.Params.ItemID = string(val)
		case paramLongID:
			q.Params.LongID = string(val)
		case paramParentID:
			q.Params.ParentID = string(val)
		case paramOccurrence:
			q.Params.Occurrence = string(val)
		case paramOptions:
			if len(val) > 0 {
				q.SaveInSent = val[0]&optionSaveInSent != 0
				q.AcceptMultiPart = val[0]&optionAcceptMultiPart != 0
			}
		case paramUser:
			q.User = string(val)
		}
		// Other tags are ignored: MS-ASHTTP reserves them, and a client
		// newer than this server must not be refused for sending one.
	}
	return q.check()
}

// deviceIDString turns the base64 form's DeviceId bytes into text:
// Microsoft's own client sends the text of the id, others a binary GUID,
// which is hex-encoded as Z-Push does (the digest §1.3).
func deviceIDString(b []byte) string {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return hex.EncodeToString(b)
		}
	}
	return string(b)
}
