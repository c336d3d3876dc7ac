package imapstore

import (
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/easgate/easgate/backend"
)

func toEnvelope(e *imap.Envelope) backend.Envelope {
	if e == nil {
		return backend.Envelope{}
	}
	return backend.Envelope{
		Date:      e.Date,
		Subject:   e.Subject,
		From:      toAddresses(e.From),
		Sender:    toAddresses(e.Sender),
		ReplyTo:   toAddresses(e.ReplyTo),
		To:        toAddresses(e.To),
		Cc:        toAddresses(e.Cc),
		Bcc:       toAddresses(e.Bcc),
		InReplyTo: e.InReplyTo,
		MessageID: e.MessageID,
	}
}

func toAddresses(in []imap.Address) []backend.Address {
	if len(in) == 0 {
		return nil
	}
	out := make([]backend.Address, 0, len(in))
	for _, a := range in {
		if a.IsGroupStart() || a.IsGroupEnd() {
			continue
		}
		out = append(out, backend.Address{Name: a.Name, Mailbox: a.Mailbox, Host: a.Host})
	}
	return out
}

// toBodyPart converts a BODYSTRUCTURE; path is the part's section number
// ("" for the root).
func toBodyPart(bs imap.BodyStructure, path []int) *backend.BodyPart {
	p := &backend.BodyPart{Path: sectionPath(path)}
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		p.Type, p.Subtype = "multipart", strings.ToLower(bs.Subtype)
		if ext := bs.Extended; ext != nil {
			p.Params = lowerKeys(ext.Params)
			setDisposition(p, ext.Disposition)
			p.Location = ext.Location
		}
		for i, child := range bs.Children {
			p.Children = append(p.Children, toBodyPart(child, append(slicesClone(path), i+1)))
		}
	case *imap.BodyStructureSinglePart:
		p.Type, p.Subtype = strings.ToLower(bs.Type), strings.ToLower(bs.Subtype)
		p.Params = lowerKeys(bs.Params)
		p.ID = strings.Trim(bs.ID, "<>")
		p.Description = bs.Description
		p.Encoding = strings.ToLower(bs.Encoding)
		p.Size = int64(bs.Size)
		if ext := bs.Extended; ext != nil {
			setDisposition(p, ext.Disposition)
			p.Location = ext.Location
		}
		if m := bs.MessageRFC822; m != nil {
			inner := &backend.Summary{Envelope: toEnvelope(m.Envelope)}
			if m.BodyStructure != nil {
				// RFC 3501 6.4.5: the parts of an embedded message are
				// numbered below the message/rfc822 part itself.
				inner.Structure = toBodyPart(m.BodyStructure, slicesClone(path))
				if _, multi := m.BodyStructure.(*imap.BodyStructureMultiPart); !multi {
					inner.Structure.Path = sectionPath(append(slicesClone(path), 1))
				}
			}
			p.Message = inner
		}
		if len(path) == 0 {
			// A single-part message's body is section 1.
			p.Path = "1"
		}
	}
	return p
}

func setDisposition(p *backend.BodyPart, d *imap.BodyStructureDisposition) {
	if d == nil {
		return
	}
	p.Disposition = strings.ToLower(d.Value)
	p.DispositionParams = lowerKeys(d.Params)
}

func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

func sectionPath(path []int) string {
	parts := make([]string, len(path))
	for i, n := range path {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ".")
}

func slicesClone(s []int) []int { return append([]int(nil), s...) }

// parseSection parses "", "HEADER", "TEXT", "1.2", "1.2.MIME",
// "1.2.HEADER" into a BODY.PEEK section.
func parseSection(text string) (*imap.FetchItemBodySection, bool) {
	sec := &imap.FetchItemBodySection{Peek: true}
	if text == "" {
		return sec, true
	}
	fields := strings.Split(text, ".")
	for i, f := range fields {
		n, err := strconv.Atoi(f)
		if err == nil && n > 0 && f[0] != '0' && f[0] != '+' {
			sec.Part = append(sec.Part, n)
			continue
		}
		if i != len(fields)-1 {
			return nil, false
		}
		switch spec := imap.PartSpecifier(strings.ToUpper(f)); spec {
		case imap.PartSpecifierHeader, imap.PartSpecifierText:
			sec.Specifier = spec
		case imap.PartSpecifierMIME:
			if len(sec.Part) == 0 {
				return nil, false
			}
			sec.Specifier = spec
		default:
			return nil, false
		}
	}
	return sec, true
}
