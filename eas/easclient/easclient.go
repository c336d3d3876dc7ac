// Package easclient is easgate's own Exchange ActiveSync client. It speaks
// to an EAS server the way a phone does — HTTP Basic auth, the plain or the
// base64 query form of MS-ASHTTP 2.2.1.1.1, WBXML bodies, policy keys — so
// that the gateway's tests can drive it over real HTTP, and so that
// `easgate probe` can check a live server.
//
// The client decides nothing: it sends what it is told and returns what
// came back (status line, headers, body, decoded WBXML tree) without
// judging it. The convenience methods (Provision, FolderSync, Settings…)
// build the usual request documents and keep the state a phone keeps, the
// policy key above all, but they report a refusal as a Response, not as
// an error; errors are for transport failures and undecodable bodies.
package easclient

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/easgate/easgate/wbxml"
)

// Path is the EAS endpoint (MS-ASHTTP 2.2.1.1.1).
const Path = "/Microsoft-Server-ActiveSync"

// WBXMLContentType is the Content-Type of WBXML bodies.
const WBXMLContentType = "application/vnd.ms-sync.wbxml"

// DefaultVersion is the protocol version a Client speaks when Version is
// empty: the one every current phone supports.
const DefaultVersion = "14.1"

// MaxResponseBytes bounds the response bodies the client reads.
const MaxResponseBytes = 64 << 20

// Client is one EAS device talking to one server as one user. Set the
// fields before the first request; the client keeps the policy key (and
// nothing else) as it goes. A Client is safe for concurrent use as long as
// its fields are not changed meanwhile.
type Client struct {
	// BaseURL is the server's scheme and host, e.g. "https://mail.example"
	// or "http://127.0.0.1:8080"; Path is appended.
	BaseURL string
	// User and Password are the HTTP Basic credentials. The plain query
	// carries User too.
	User, Password string
	// DeviceID and DeviceType identify the device, e.g. "ApplF17ABC123",
	// "iPhone".
	DeviceID, DeviceType string
	// Version is MS-ASProtocolVersion, e.g. "14.1" or "16.1"; "" means
	// DefaultVersion.
	Version string
	// UserAgent is the User-Agent header; "" sends none beyond Go's.
	UserAgent string
	// Base64Query sends the base64 query form (MS-ASHTTP 2.2.1.1.1.1)
	// instead of the plain one; the version and policy key then travel in
	// the query rather than in headers.
	Base64Query bool
	// Base64User adds the user as base64 parameter 8 (a Z-Push extension;
	// Microsoft's clients never send it).
	Base64User bool
	// Locale is the base64 form's Windows LCID; 0 means 0x0409 (en-US).
	Locale uint16
	// Gzip asks for gzip responses (Accept-Encoding: gzip) and decompresses
	// them itself, so that Response.Gzipped shows what the server did.
	// Without it the client asks for identity encoding.
	Gzip bool
	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient *http.Client

	mu        sync.Mutex
	policyKey uint32
}

// PolicyKey returns the policy key the client sends (0: none yet).
func (c *Client) PolicyKey() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.policyKey
}

// SetPolicyKey sets the policy key the client sends from now on; 0 sends
// none (as a phone does before its first Provision).
func (c *Client) SetPolicyKey(k uint32) {
	c.mu.Lock()
	c.policyKey = k
	c.mu.Unlock()
}

func (c *Client) version() string {
	if c.Version == "" {
		return DefaultVersion
	}
	return c.Version
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// Response is what the server answered.
type Response struct {
	HTTPStatus int
	Header     http.Header
	// Body is the response body, decompressed when it came gzipped.
	Body []byte
	// Gzipped reports that the body came with Content-Encoding: gzip.
	Gzipped bool
	// WireLength is the number of body bytes on the wire (before
	// decompression).
	WireLength int
	// Tree is the decoded WBXML body, or nil when the body is empty or not
	// WBXML.
	Tree *wbxml.Element
}

// Status returns the text of the top-level Status child of the response
// document, as an int, or 0 when there is none.
func (r *Response) Status() int {
	if r.Tree == nil {
		return 0
	}
	for _, ch := range r.Tree.Children {
		if ch.Tag.Name() == "Status" {
			n, _ := strconv.Atoi(strings.TrimSpace(ch.Text))
			return n
		}
	}
	return 0
}

// Params are the command parameters of the query (MS-ASHTTP 2.2.1.1.1.1.3
// and 2.2.1.1.1.2), used by SendMail, SmartReply, SmartForward,
// GetAttachment and MeetingResponse on 12.x.
type Params struct {
	AttachmentName, CollectionID, ItemID, LongID, Occurrence string
	SaveInSent                                               bool
	AcceptMultiPart                                          bool
}

// Request is one request beyond the command and its WBXML body.
type Request struct {
	Params Params
	// Body and ContentType replace the WBXML body, e.g. message/rfc822 for
	// a 12.x SendMail, or a deliberately broken document.
	Body        []byte
	ContentType string
	// NoPolicyKey leaves the policy key out, as AOSP does on Ping.
	NoPolicyKey bool
	// Header holds extra request headers.
	Header http.Header
}

// Error reports a failure to talk to the server at all, or a body that
// claims to be WBXML and does not decode. A refusal by the server is not an
// error.
type Error struct {
	Command string
	Err     error
}

func (e *Error) Error() string { return "easclient: " + e.Command + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Options sends OPTIONS (MS-ASHTTP 2.2.3), which tells the supported
// versions and commands in MS-ASProtocolVersions and MS-ASProtocolCommands.
func (c *Client) Options(ctx context.Context) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, strings.TrimSuffix(c.BaseURL, "/")+Path, nil)
	if err != nil {
		return nil, &Error{"OPTIONS", err}
	}
	c.setCommonHeaders(req)
	return c.send("OPTIONS", req)
}

// Do sends command cmd (its Cmd= name, e.g. "FolderSync") with the WBXML
// document req (nil: an empty body).
func (c *Client) Do(ctx context.Context, cmd string, req *wbxml.Element) (*Response, error) {
	return c.DoRequest(ctx, cmd, req, Request{})
}

// DoRequest is Do with parameters, a raw body or extra headers.
func (c *Client) DoRequest(ctx context.Context, cmd string, doc *wbxml.Element, r Request) (*Response, error) {
	body, ctype := r.Body, r.ContentType
	if body == nil && doc != nil {
		b, err := wbxml.Marshal(doc)
		if err != nil {
			return nil, &Error{cmd, fmt.Errorf("encoding the request: %w", err)}
		}
		body = b
	}
	if ctype == "" && len(body) > 0 {
		ctype = WBXMLContentType
	}
	q, err := c.query(cmd, r)
	if err != nil {
		return nil, &Error{cmd, err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.BaseURL, "/")+Path+"?"+q, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{cmd, err}
	}
	c.setCommonHeaders(req)
	h := req.Header
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	if !c.Base64Query {
		h.Set("MS-ASProtocolVersion", c.version())
		if k := c.PolicyKey(); !r.NoPolicyKey {
			h.Set("X-MS-PolicyKey", strconv.FormatUint(uint64(k), 10))
		}
		if r.Params.AcceptMultiPart {
			h.Set("MS-ASAcceptMultiPart", "T")
		}
	}
	for k, vs := range r.Header {
		h[k] = vs
	}
	return c.send(cmd, req)
}

func (c *Client) setCommonHeaders(req *http.Request) {
	if c.User != "" || c.Password != "" {
		req.SetBasicAuth(c.User, c.Password)
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	// Asking explicitly keeps net/http from decompressing on its own, so
	// the response shows what the server sent.
	if c.Gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	} else {
		req.Header.Set("Accept-Encoding", "identity")
	}
}

func (c *Client) send(cmd string, req *http.Request) (*Response, error) {
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, &Error{cmd, err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, &Error{cmd, fmt.Errorf("reading the response: %w", err)}
	}
	if len(raw) > MaxResponseBytes {
		return nil, &Error{cmd, fmt.Errorf("response larger than %d bytes", MaxResponseBytes)}
	}
	r := &Response{HTTPStatus: resp.StatusCode, Header: resp.Header, Body: raw, WireLength: len(raw)}
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		r.Gzipped = true
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return r, &Error{cmd, fmt.Errorf("gzip body: %w", err)}
		}
		if r.Body, err = io.ReadAll(io.LimitReader(zr, MaxResponseBytes)); err != nil {
			return r, &Error{cmd, fmt.Errorf("gzip body: %w", err)}
		}
	}
	if len(r.Body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), WBXMLContentType) {
		if r.Tree, err = wbxml.Parse(bytes.NewReader(r.Body), wbxml.DefaultLimits); err != nil {
			return r, &Error{cmd, fmt.Errorf("decoding the WBXML response: %w", err)}
		}
	}
	return r, nil
}

// commandCodes are the base64 query's command codes (MS-ASHTTP
// 2.2.1.1.1.1.2).
var commandCodes = map[string]byte{
	"Sync": 0, "SendMail": 1, "SmartForward": 2, "SmartReply": 3, "GetAttachment": 4,
	"FolderSync": 9, "FolderCreate": 10, "FolderDelete": 11, "FolderUpdate": 12,
	"MoveItems": 13, "GetItemEstimate": 14, "MeetingResponse": 15, "Search": 16,
	"Settings": 17, "Ping": 18, "ItemOperations": 19, "Provision": 20,
	"ResolveRecipients": 21, "ValidateCert": 22, "Find": 23,
}

// ErrBase64 reports a request the base64 query form cannot carry.
var ErrBase64 = errors.New("cannot be sent in the base64 query form")

// query builds the request's query string in the configured form.
func (c *Client) query(cmd string, r Request) (string, error) {
	if !c.Base64Query {
		v := url.Values{}
		v.Set("Cmd", cmd)
		v.Set("User", c.User)
		v.Set("DeviceId", c.DeviceID)
		v.Set("DeviceType", c.DeviceType)
		p := r.Params
		for _, kv := range [][2]string{{"AttachmentName", p.AttachmentName}, {"CollectionId", p.CollectionID}, {"ItemId", p.ItemID}, {"LongId", p.LongID}, {"Occurrence", p.Occurrence}} {
			if kv[1] != "" {
				v.Set(kv[0], kv[1])
			}
		}
		if p.SaveInSent {
			v.Set("SaveInSent", "T")
		}
		return v.Encode(), nil
	}
	b, err := c.Base64QueryBytes(cmd, r)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Base64QueryBytes returns the decoded bytes of the base64 query for cmd
// (MS-ASHTTP 2.2.1.1.1.1): version, command code, locale, DeviceId,
// PolicyKey, DeviceType, then tag-length-value parameters.
func (c *Client) Base64QueryBytes(cmd string, r Request) ([]byte, error) {
	code, ok := commandCodes[cmd]
	if !ok {
		return nil, fmt.Errorf("command %q: %w", cmd, ErrBase64)
	}
	major, minor, ok := strings.Cut(c.version(), ".")
	vmaj, err1 := strconv.Atoi(major)
	vmin, err2 := strconv.Atoi(minor)
	if !ok || err1 != nil || err2 != nil || vmaj*10+vmin > 255 {
		return nil, fmt.Errorf("version %q: %w", c.version(), ErrBase64)
	}
	var b []byte
	b = append(b, byte(vmaj*10+vmin), code)
	loc := c.Locale
	if loc == 0 {
		loc = 0x0409
	}
	b = binary.LittleEndian.AppendUint16(b, loc)
	field := func(s string) error {
		if len(s) > 255 {
			return fmt.Errorf("%q longer than 255 bytes: %w", s, ErrBase64)
		}
		b = append(b, byte(len(s)))
		b = append(b, s...)
		return nil
	}
	if err := field(c.DeviceID); err != nil {
		return nil, err
	}
	if k := c.PolicyKey(); k != 0 && !r.NoPolicyKey {
		b = append(b, 4)
		b = binary.LittleEndian.AppendUint32(b, k)
	} else {
		b = append(b, 0)
	}
	if err := field(c.DeviceType); err != nil {
		return nil, err
	}
	p := r.Params
	params := []struct {
		tag byte
		val string
	}{{0, p.AttachmentName}, {1, p.CollectionID}, {3, p.ItemID}, {4, p.LongID}, {6, p.Occurrence}}
	if c.Base64User {
		params = append(params, struct {
			tag byte
			val string
		}{8, c.User})
	}
	for _, kv := range params {
		if kv.val == "" {
			continue
		}
		b = append(b, kv.tag)
		if err := field(kv.val); err != nil {
			return nil, err
		}
	}
	var opts byte
	if p.SaveInSent {
		opts |= 0x01
	}
	if p.AcceptMultiPart {
		opts |= 0x02
	}
	if opts != 0 {
		b = append(b, 7, 1, opts)
	}
	return b, nil
}

// AutodiscoverPath is where clients post Autodiscover requests (the
// digest §1.8).
const AutodiscoverPath = "/autodiscover/autodiscover.xml"

// Autodiscover posts a mobilesync Autodiscover request for email (MS-ASCMD
// 2.2.1.1) with the client's credentials. The response body is the XML
// answer; Tree stays nil.
func (c *Client) Autodiscover(ctx context.Context, email string) (*Response, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n" +
		`<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006">` +
		`<Request><EMailAddress>`)
	xml.EscapeText(&b, []byte(email))
	b.WriteString(`</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema></Request></Autodiscover>`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.BaseURL, "/")+AutodiscoverPath, &b)
	if err != nil {
		return nil, &Error{"Autodiscover", err}
	}
	c.setCommonHeaders(req)
	req.Header.Set("Content-Type", "text/xml")
	return c.send("Autodiscover", req)
}
