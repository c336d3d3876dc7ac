package mailitem

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/easgate/easgate/wbxml"
)

// Drafts in 16.x (MS-ASEMAIL 3.1.5.3, MS-ASCMD 2.2.3.7.2; digest §4.3):
// the phone adds a draft to the Drafts folder with Sync > Add, giving its
// fields in ApplicationData; the server builds the MIME message and stores
// it. This file reads such an ApplicationData and composes the message.

// ErrBadDraft reports ApplicationData that cannot become a message: an
// address list that does not parse, an unknown body type, an attachment
// without content. The phone sees Sync Status 6 for that Add.
var ErrBadDraft = errors.New("mailitem: draft cannot be converted")

// MaxDraftAttachments bounds the attachments of one draft.
const MaxDraftAttachments = 100

// Draft is a draft the phone added (16.x).
type Draft struct {
	// To, Cc and Bcc are address lists as the phone wrote them
	// (email:To, email:Cc, email2:Bcc), e.g. `"Bob" <bob@example.com>`.
	To, Cc, Bcc string
	Subject     string
	// Importance is 0 low, 1 normal, 2 high; -1 when not given.
	Importance int
	// BodyType is BodyPlain or BodyHTML.
	BodyType BodyType
	Body     string
	// Attachments are airsyncbase:Attachments > Add.
	Attachments []DraftAttachment
	// Send is email2:Send: the phone asks for the draft to be sent now.
	Send bool
}

// DraftAttachment is one attachment of a Draft (MS-ASAIRS 2.2.2.2).
type DraftAttachment struct {
	ClientID    string
	Name        string
	ContentType string
	ContentID   string
	Inline      bool
	Content     []byte
}

// ParseDraft reads the ApplicationData of a Sync Add (or Change) of an
// email in the Drafts folder. Errors wrap ErrBadDraft.
func ParseDraft(ad *wbxml.Element) (*Draft, error) {
	d := &Draft{Importance: -1, BodyType: BodyPlain}
	d.To = ad.ChildText(wbxml.EmailTo)
	d.Cc = ad.ChildText(wbxml.EmailCc)
	d.Bcc = ad.ChildText(wbxml.Email2Bcc)
	d.Subject = ad.ChildText(wbxml.EmailSubject)
	d.Send = ad.Has(wbxml.Email2Send)
	if s := ad.ChildText(wbxml.EmailImportance); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 2 {
			return nil, fmt.Errorf("%w: Importance %q", ErrBadDraft, s)
		}
		d.Importance = n
	}
	if b := ad.Child(wbxml.AirSyncBaseBody); b != nil {
		switch t := b.ChildText(wbxml.AirSyncBaseType); t {
		case "", "1":
			d.BodyType = BodyPlain
		case "2":
			d.BodyType = BodyHTML
		default:
			return nil, fmt.Errorf("%w: body type %q", ErrBadDraft, t)
		}
		if data := b.Child(wbxml.AirSyncBaseData); data != nil {
			d.Body = data.Value()
			if data.IsOpaque {
				d.Body = string(data.Opaque)
			}
		}
	}
	if atts := ad.Child(wbxml.AirSyncBaseAttachments); atts != nil {
		for _, a := range atts.ChildrenOf(wbxml.AirSyncBaseAdd) {
			if len(d.Attachments) == MaxDraftAttachments {
				return nil, fmt.Errorf("%w: more than %d attachments", ErrBadDraft, MaxDraftAttachments)
			}
			att, err := parseDraftAttachment(a)
			if err != nil {
				return nil, err
			}
			d.Attachments = append(d.Attachments, att)
		}
	}
	for _, list := range []string{d.To, d.Cc, d.Bcc} {
		if _, err := parseAddresses(list); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func parseDraftAttachment(a *wbxml.Element) (DraftAttachment, error) {
	att := DraftAttachment{
		ClientID:    a.ChildText(wbxml.AirSyncBaseClientId),
		Name:        a.ChildText(wbxml.AirSyncBaseDisplayName),
		ContentType: a.ChildText(wbxml.AirSyncBaseContentType),
		ContentID:   a.ChildText(wbxml.AirSyncBaseContentId),
		Inline:      a.ChildText(wbxml.AirSyncBaseIsInline) == "1",
	}
	c := a.Child(wbxml.AirSyncBaseContent)
	if c == nil {
		return att, fmt.Errorf("%w: attachment %q without Content", ErrBadDraft, att.Name)
	}
	if c.IsOpaque {
		att.Content = c.Opaque
	} else {
		// Content as text is base64 (MS-ASAIRS 2.2.2.14).
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Text), ""))
		if err != nil {
			return att, fmt.Errorf("%w: attachment %q: %v", ErrBadDraft, att.Name, err)
		}
		att.Content = b
	}
	if att.ContentType == "" {
		att.ContentType = "application/octet-stream"
	}
	if _, _, err := mime.ParseMediaType(att.ContentType); err != nil {
		return att, fmt.Errorf("%w: attachment %q: content type %q", ErrBadDraft, att.Name, att.ContentType)
	}
	return att, nil
}

func parseAddresses(list string) ([]*mail.Address, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	addrs, err := mail.ParseAddressList(list)
	if err != nil {
		return nil, fmt.Errorf("%w: address list %q: %v", ErrBadDraft, list, err)
	}
	return addrs, nil
}

// Compose returns the draft as an RFC 5322 message from the address from
// (the user's own), dated date, with Message-ID msgID (without angle
// brackets). Text is UTF-8, quoted-printable; attachments are base64. A
// draft with attachments is multipart/mixed with the body first.
func (d *Draft) Compose(from string, date time.Time, msgID string) ([]byte, error) {
	var h mail.Header
	h.SetDate(date)
	h.SetMessageID(msgID)
	if a, err := mail.ParseAddress(from); err == nil {
		h.SetAddressList("From", []*mail.Address{a})
	} else {
		return nil, fmt.Errorf("mailitem: draft sender %q: %w", from, err)
	}
	for _, f := range []struct{ name, list string }{{"To", d.To}, {"Cc", d.Cc}, {"Bcc", d.Bcc}} {
		addrs, err := parseAddresses(f.list)
		if err != nil {
			return nil, err
		}
		if len(addrs) > 0 {
			h.SetAddressList(f.name, addrs)
		}
	}
	if d.Subject != "" {
		h.SetSubject(d.Subject)
	}
	switch d.Importance {
	case 0:
		h.Set("Importance", "low")
	case 2:
		h.Set("Importance", "high")
	}
	ctype := "text/plain"
	if d.BodyType == BodyHTML {
		ctype = "text/html"
	}
	var buf bytes.Buffer
	if len(d.Attachments) == 0 {
		h.SetContentType(ctype, map[string]string{"charset": "utf-8"})
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		w, err := mail.CreateSingleInlineWriter(&buf, h)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, d.Body); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	mw, err := mail.CreateWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	var ih mail.InlineHeader
	ih.SetContentType(ctype, map[string]string{"charset": "utf-8"})
	ih.Set("Content-Transfer-Encoding", "quoted-printable")
	tw, err := mw.CreateSingleInline(ih)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(tw, d.Body); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	for _, a := range d.Attachments {
		var ah mail.AttachmentHeader
		mt, params, _ := mime.ParseMediaType(a.ContentType)
		ah.SetContentType(mt, params)
		if a.Name != "" {
			ah.SetFilename(a.Name)
		}
		if a.Inline {
			disp := map[string]string{}
			if a.Name != "" {
				disp["filename"] = a.Name
			}
			ah.SetContentDisposition("inline", disp)
		}
		if a.ContentID != "" {
			ah.Set("Content-Id", "<"+strings.Trim(a.ContentID, "<>")+">")
		}
		ah.Set("Content-Transfer-Encoding", "base64")
		aw, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, err
		}
		if _, err := aw.Write(a.Content); err != nil {
			return nil, err
		}
		if err := aw.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
