package eas

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/easgate/easgate/wbxml"
)

// Handler runs one EAS command. body is the decoded WBXML request, already
// checked to have the command's root element, or nil when the request had
// no body or a body that is not WBXML (then req.Raw holds it, e.g. the
// message/rfc822 of a 12.x SendMail). A handler returns what to send, or an
// error: a *StatusError for what the phone is to see, anything else for a
// server error (see StatusError and errorStatus). Nothing is written before
// the handler returns.
type Handler func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error)

// Response is a command's answer. The zero value is the empty response:
// HTTP 200, Content-Length 0, no gzip (the digest §1.6: iOS mistakes a
// gzipped empty body for data).
type Response struct {
	// Element is the WBXML response document.
	Element *wbxml.Element
	// Body, when not nil, writes a response too big to build as a tree
	// (ItemOperations with attachments). It is run before anything is sent
	// and its output spooled, so an error still becomes a clean error
	// response. Element and Body are exclusive.
	Body func(w io.Writer) error
	// Status is the top-level status a Body response carries, for the
	// request log and metrics (an Element's is read from the tree).
	Status int
	// ContentType overrides application/vnd.ms-sync.wbxml, e.g.
	// application/vnd.ms-sync.multipart (MS-ASCMD 2.2.2.9.1.1).
	ContentType string
	// Header holds extra response headers.
	Header http.Header
	// Later, when set, is the rest of a command that waits for news
	// (Ping, hanging Sync): the front door calls it once and writes what
	// it passes to answer instead; the other fields are then unused.
	// Later returns at once and calls answer exactly once, from any
	// goroutine, when the wait is over: a waiting request holds no
	// goroutine. The front door may have let the HTTP handler return by
	// then (the connection parked, see Server.Listener); ctx is then not
	// the request's. Later owns whatever the command handed it (the
	// request's mail session stays open until answer is called).
	Later func(ctx context.Context, answer func(Response, error))
}

// command describes one EAS command name of MS-ASHTTP 2.2.1.1.1.2.
type command struct {
	Name string
	// Code is the base64 query's command code (MS-ASHTTP 2.2.1.1.1.1.2).
	Code byte
	// Root is the request and response root element; 0 for commands whose
	// body is not WBXML (GetAttachment).
	Root wbxml.Tag
	// Status is the Status element on the root's code page, where 14.0+
	// errors go (MS-ASCMD 2.2.2); 0 when the response root has no
	// top-level Status (MeetingResponse) or no WBXML at all.
	Status wbxml.Tag
}

// commands lists every command name EAS defines, whether or not this server
// implements it, so that the base64 codes decode and errors for a known but
// unimplemented command can be answered in its own terms. The legacy 2.5
// hierarchy commands (codes 5-8) have no WBXML root.
var commands = []command{
	{"Sync", 0, wbxml.AirSyncSync, wbxml.AirSyncStatus},
	{"SendMail", 1, wbxml.ComposeMailSendMail, wbxml.ComposeMailStatus},
	{"SmartForward", 2, wbxml.ComposeMailSmartForward, wbxml.ComposeMailStatus},
	{"SmartReply", 3, wbxml.ComposeMailSmartReply, wbxml.ComposeMailStatus},
	{"GetAttachment", 4, 0, 0},
	{"GetHierarchy", 5, 0, 0},
	{"CreateCollection", 6, 0, 0},
	{"DeleteCollection", 7, 0, 0},
	{"MoveCollection", 8, 0, 0},
	{"FolderSync", 9, wbxml.FolderHierarchyFolderSync, wbxml.FolderHierarchyStatus},
	{"FolderCreate", 10, wbxml.FolderHierarchyFolderCreate, wbxml.FolderHierarchyStatus},
	{"FolderDelete", 11, wbxml.FolderHierarchyFolderDelete, wbxml.FolderHierarchyStatus},
	{"FolderUpdate", 12, wbxml.FolderHierarchyFolderUpdate, wbxml.FolderHierarchyStatus},
	{"MoveItems", 13, wbxml.MoveMoveItems, wbxml.MoveStatus},
	{"GetItemEstimate", 14, wbxml.GetItemEstimateGetItemEstimate, wbxml.GetItemEstimateStatus},
	{"MeetingResponse", 15, wbxml.MeetingResponseMeetingResponse, 0},
	{"Search", 16, wbxml.SearchSearch, wbxml.SearchStatus},
	{"Settings", 17, wbxml.SettingsSettings, wbxml.SettingsStatus},
	{"Ping", 18, wbxml.PingPing, wbxml.PingStatus},
	{"ItemOperations", 19, wbxml.ItemOperationsItemOperations, wbxml.ItemOperationsStatus},
	{"Provision", 20, wbxml.ProvisionProvision, wbxml.ProvisionStatus},
	{"ResolveRecipients", 21, wbxml.ResolveRecipientsResolveRecipients, wbxml.ResolveRecipientsStatus},
	{"ValidateCert", 22, wbxml.ValidateCertValidateCert, wbxml.ValidateCertStatus},
	{"Find", 23, wbxml.FindFind, wbxml.FindStatus},
}

// commandByCode finds a command by its base64 code.
func commandByCode(code byte) (command, bool) {
	for _, c := range commands {
		if c.Code == code {
			return c, true
		}
	}
	return command{}, false
}

// commandByName finds a command by its Cmd= name. Names are matched
// case-insensitively: clients have been seen to differ in case, and the
// name's meaning is not in doubt.
func commandByName(name string) (command, bool) {
	for _, c := range commands {
		if strings.EqualFold(c.Name, name) {
			return c, true
		}
	}
	return command{}, false
}
