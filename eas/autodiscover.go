package eas

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/beevik/etree"
)

// AutodiscoverPath is the Autodiscover URL path; it is matched without
// regard to case (the digest §1.8).
const AutodiscoverPath = "/autodiscover/autodiscover.xml"

// Autodiscover XML namespaces (MS-ASCMD 2.2.1.1, MS-OXDSCLI).
const (
	nsMobileSyncResponse = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
	nsAutodiscover       = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
)

// maxAutodiscoverBody bounds an Autodiscover request; the real ones are a
// few hundred bytes.
const maxAutodiscoverBody = 64 << 10

// errAutodiscoverRequest is the cause logged for a request that gets the
// "Invalid Request" error document.
var errAutodiscoverRequest = errors.New("autodiscover: invalid request")

// serveAutodiscover answers POST /autodiscover/autodiscover.xml (MS-ASCMD
// 2.2.1.1). After HTTP Basic authentication (401 to get credentials, as
// phones expect):
//
//   - A mobilesync request (AcceptableResponseSchema of the mobilesync
//     response schema) gets Culture, User (DisplayName, EMailAddress) and
//     Action > Settings > Server of Type MobileSync with the public EAS URL
//     as Url and Name.
//   - Any other schema (Outlook desktop asks for the outlook 2006a schema,
//     which describes MAPI/EWS endpoints easgate does not have) and XML
//     that is not an Autodiscover request get what Exchange sends for
//     them: the generic response schema's Response > Error with ErrorCode
//     600 and Message "Invalid Request", with HTTP 200, so that the client
//     stops trying this URL and falls back to manual setup.
func (s *Server) serveAutodiscover(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Now()
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	rec := &logRecord{command: "Autodiscover", remote: r.RemoteAddr}
	defer func() { s.finish(rec, start) }()

	if r.Method != http.MethodPost {
		rec.code = http.StatusMethodNotAllowed
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	cred, err := s.authenticate(r, rec)
	if err != nil {
		if r.Context().Err() != nil {
			rec.code, rec.cause = 499, errClientGone
			return
		}
		s.writeAuthError(w, r, err, "", command{}, rec)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAutodiscoverBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			rec.code, rec.cause = http.StatusRequestEntityTooLarge, err
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		rec.code, rec.cause = 499, fmt.Errorf("reading body: %w", err)
		return
	}
	email, schema, perr := parseAutodiscover(data)
	var doc *etree.Document
	if perr == nil && schema == nsMobileSyncResponse {
		if email == "" {
			email = s.address(cred.user)
		}
		doc = s.autodiscoverSettings(r, email)
	} else {
		if perr == nil {
			perr = fmt.Errorf("%w: response schema %q not offered", errAutodiscoverRequest, schema)
		}
		rec.cause = perr
		doc = autodiscoverError(s.cfg.Now().UTC().Format("15:04:05.0000000"), rand.Uint32())
	}
	doc.Indent(2)
	out, err := doc.WriteToBytes()
	if err != nil {
		rec.code, rec.cause = http.StatusInternalServerError, err
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Cache-Control", "private")
	w.Header().Set("Content-Length", fmt.Sprint(len(out)))
	w.WriteHeader(http.StatusOK)
	rec.code = http.StatusOK
	w.Write(out)
}

// parseAutodiscover reads Autodiscover > Request > EMailAddress and
// AcceptableResponseSchema. Element names are matched without regard to
// namespace prefix; the namespace of the root decides nothing, the
// requested response schema does.
func parseAutodiscover(data []byte) (email, schema string, err error) {
	doc := etree.NewDocument()
	doc.ReadSettings.Permissive = false
	if err := doc.ReadFromBytes(data); err != nil {
		return "", "", fmt.Errorf("%w: %w", errAutodiscoverRequest, err)
	}
	root := doc.Root()
	if root == nil || root.Tag != "Autodiscover" {
		return "", "", fmt.Errorf("%w: root element is not Autodiscover", errAutodiscoverRequest)
	}
	req := root.SelectElement("Request")
	if req == nil {
		return "", "", fmt.Errorf("%w: no Request element", errAutodiscoverRequest)
	}
	if e := req.SelectElement("EMailAddress"); e != nil {
		email = strings.TrimSpace(e.Text())
	}
	if e := req.SelectElement("AcceptableResponseSchema"); e != nil {
		schema = strings.TrimSpace(e.Text())
	}
	return email, schema, nil
}

// autodiscoverSettings builds the mobilesync answer.
func (s *Server) autodiscoverSettings(r *http.Request, email string) *etree.Document {
	url := s.cfg.PublicURL
	if url == "" {
		url = "https://" + r.Host + Path
	}
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
	ad := doc.CreateElement("Autodiscover")
	ad.CreateAttr("xmlns", nsAutodiscover)
	resp := ad.CreateElement("Response")
	resp.CreateAttr("xmlns", nsMobileSyncResponse)
	resp.CreateElement("Culture").SetText("en:us")
	user := resp.CreateElement("User")
	name, _, _ := strings.Cut(email, "@")
	user.CreateElement("DisplayName").SetText(name)
	user.CreateElement("EMailAddress").SetText(email)
	server := resp.CreateElement("Action").CreateElement("Settings").CreateElement("Server")
	server.CreateElement("Type").SetText("MobileSync")
	server.CreateElement("Url").SetText(url)
	server.CreateElement("Name").SetText(url)
	return doc
}

// autodiscoverError builds the generic "Invalid Request" error (ErrorCode
// 600) of the Autodiscover response schema, as Exchange sends it for a
// request it cannot serve.
func autodiscoverError(time string, id uint32) *etree.Document {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
	ad := doc.CreateElement("Autodiscover")
	ad.CreateAttr("xmlns", nsAutodiscover)
	e := ad.CreateElement("Response").CreateElement("Error")
	e.CreateAttr("Time", time)
	e.CreateAttr("Id", fmt.Sprint(id))
	e.CreateElement("ErrorCode").SetText("600")
	e.CreateElement("Message").SetText("Invalid Request")
	e.CreateElement("DebugData")
	return doc
}
