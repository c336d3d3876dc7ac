package demo

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/mail"
)

// Folders are the demo account's mailboxes, in creation order. The memory
// server announces no SPECIAL-USE attributes, so the default folders carry
// the names every IMAP-to-EAS mapping recognises.
var Folders = []string{"INBOX", "Drafts", "Sent", "Trash", "Junk", "Projects", "Projects/Easgate", "Receipts"}

// Message is one seeded message before it is rendered to RFC 5322 form.
type Message struct {
	Folder  string
	From    *mail.Address
	To, Cc  []*mail.Address
	Subject string
	// Age is how long before the seeding time the message was sent; the
	// internal date is the same.
	Age   time.Duration
	Flags []imap.Flag
	// Text and HTML are the bodies; with both, the message is
	// multipart/alternative.
	Text, HTML string
	// Attachments are added as parts of a multipart/mixed message.
	Attachments []Attachment
	// ID is the local part of the Message-ID; InReplyTo names another
	// message's ID for a thread.
	ID, InReplyTo string
}

// Attachment is a file attached to a seeded message.
type Attachment struct {
	Name, ContentType string
	Data              []byte
}

var (
	addrDemo  = &mail.Address{Name: "Dana Demo", Address: "demo@example.com"}
	addrAlex  = &mail.Address{Name: "Alex Example", Address: "alex@example.com"}
	addrMaria = &mail.Address{Name: "María José Fernández", Address: "maria@example.org"}
	addrKenji = &mail.Address{Name: "田中 健二", Address: "kenji@example.jp"}
	addrNews  = &mail.Address{Name: "Gopher Weekly", Address: "news@example.net"}
	addrShop  = &mail.Address{Name: "Example Shop", Address: "orders@shop.example"}
	addrTeam  = &mail.Address{Name: "easgate team", Address: "team@example.com"}
	addrSpam  = &mail.Address{Name: "Prize Department", Address: "winner@lottery.example"}
	addrSam   = &mail.Address{Name: "Sam O'Neil", Address: "sam@example.org"}
)

const day = 24 * time.Hour

// Messages returns the demo account's mail: twenty messages across every
// folder, covering plain text, HTML, multipart/alternative, attachments,
// RFC 2047 subjects in three scripts, a thread, and read, flagged and
// answered messages.
func Messages() []Message {
	return []Message{
		{Folder: "INBOX", From: addrTeam, To: to(addrDemo), Subject: "Welcome to the easgate demo", Age: 2 * time.Hour, ID: "welcome",
			Text: "Hi Dana,\r\n\r\nthis mailbox lives in the memory of `easgate demo`. Everything you do on the phone\r\n(read, flag, move, delete, send) happens here and is gone when the demo stops.\r\n\r\nTry sending a message to alex@example.com: it lands in Alex's INBOX.\r\n\r\n-- \r\nthe easgate team\r\n"},
		{Folder: "INBOX", From: addrNews, To: to(addrDemo), Subject: "Gopher Weekly #412: generics, iterators and a faster GC", Age: 5 * time.Hour, ID: "weekly412",
			Text: "Gopher Weekly #412\r\n\r\n* Range-over-func iterators in practice\r\n* A tour of the new garbage collector\r\n* Five ways to structure an HTTP service\r\n",
			HTML: "<html><body><h1>Gopher Weekly #412</h1><ul><li><a href=\"https://example.net/1\">Range-over-func iterators in practice</a></li><li><a href=\"https://example.net/2\">A tour of the new garbage collector</a></li><li><a href=\"https://example.net/3\">Five ways to structure an HTTP service</a></li></ul><p style=\"color:#888\">You subscribed as demo@example.com.</p></body></html>"},
		{Folder: "INBOX", From: addrAlex, To: to(addrDemo), Subject: "Photos from Saturday's hike", Age: 9 * time.Hour, ID: "hike", Flags: flags(imap.FlagSeen),
			Text:        "Here is the one from the top. The rest are still on my camera.\r\n\r\nAlex\r\n",
			Attachments: []Attachment{{Name: "summit.png", ContentType: "image/png", Data: demoPNG()}}},
		{Folder: "INBOX", From: addrShop, To: to(addrDemo), Subject: "Your invoice 2026-114", Age: 26 * time.Hour, ID: "invoice114", Flags: flags(imap.FlagSeen, imap.FlagFlagged),
			Text:        "Thank you for your order.\r\n\r\nOrder:   2026-114\r\nTotal:   EUR 42.00\r\n\r\nThe invoice is attached as a PDF.\r\n",
			HTML:        "<p>Thank you for your order.</p><table><tr><td>Order</td><td>2026-114</td></tr><tr><td>Total</td><td><b>EUR 42.00</b></td></tr></table><p>The invoice is attached as a PDF.</p>",
			Attachments: []Attachment{{Name: "invoice-2026-114.pdf", ContentType: "application/pdf", Data: demoPDF("Invoice 2026-114: EUR 42.00")}}},
		{Folder: "INBOX", From: addrMaria, To: to(addrDemo), Subject: "Grüße aus München – Oktoberfest-Fotos", Age: 30 * time.Hour, ID: "muenchen",
			Text: "Hallo Dana,\r\n\r\nviele Grüße aus München! Das Wetter war großartig, die Brezn auch.\r\nDie Fotos schicke ich später.\r\n\r\nMaría\r\n"},
		{Folder: "INBOX", From: addrKenji, To: to(addrDemo), Cc: to(addrAlex), Subject: "会議の議事録（11月27日）", Age: 2 * day, ID: "gijiroku", Flags: flags(imap.FlagSeen),
			Text: "皆さん、\r\n\r\n昨日の会議の議事録をお送りします。\r\n・リリース日：12月15日\r\n・担当：田中、Dana\r\n\r\nよろしくお願いします。\r\n田中\r\n"},
		{Folder: "INBOX", From: addrAlex, To: to(addrDemo, addrSam), Subject: "🎉 Release party on Friday", Age: 50 * time.Hour, ID: "party", Flags: flags(imap.FlagFlagged),
			Text: "Friday 17:00 on the roof terrace. Bring your phone, we'll sync it live.\r\n",
			HTML: "<p>Friday <b>17:00</b> on the roof terrace. Bring your phone, we'll sync it live. 🎉</p>"},
		{Folder: "INBOX", From: addrSam, To: to(addrDemo), Subject: "Lunch on Thursday?", Age: 3 * day, ID: "lunch", Flags: flags(imap.FlagSeen, imap.FlagAnswered),
			Text: "Dana, are you free for lunch on Thursday? The new ramen place opened.\r\n\r\nSam\r\n"},
		{Folder: "INBOX", From: addrSam, To: to(addrDemo), Subject: "Re: Lunch on Thursday?", Age: 3*day - 2*time.Hour, ID: "lunch-re2", InReplyTo: "lunch-re1",
			Text: "Great, 12:30 then. I'll book a table.\r\n\r\n> Thursday works, 12:30?\r\n"},
		{Folder: "INBOX", From: addrTeam, To: to(addrDemo), Subject: "Design notes: how the sync state survives retries", Age: 4 * day, ID: "design", Flags: flags(imap.FlagSeen),
			Text: longText()},
		{Folder: "INBOX", From: addrAlex, To: to(addrDemo), Cc: to(addrMaria, addrKenji, addrSam), Subject: "Agenda for Monday", Age: 6 * day, ID: "agenda", Flags: flags(imap.FlagSeen),
			Text: "1. Status of the phone tests\r\n2. Push notifications\r\n3. Anything else\r\n"},
		{Folder: "INBOX", From: addrNews, To: to(addrDemo), Subject: "Gopher Weekly #411", Age: 8 * day, ID: "weekly411", Flags: flags(imap.FlagSeen),
			HTML: "<html><body><h1>Gopher Weekly #411</h1><p>This issue is all about <i>profiling</i>.</p></body></html>"},

		{Folder: "Sent", From: addrDemo, To: to(addrSam), Subject: "Re: Lunch on Thursday?", Age: 3*day - time.Hour, ID: "lunch-re1", InReplyTo: "lunch", Flags: flags(imap.FlagSeen),
			Text: "Thursday works, 12:30?\r\n\r\n> Dana, are you free for lunch on Thursday?\r\n"},
		{Folder: "Sent", From: addrDemo, To: to(addrAlex), Subject: "Slides for the review", Age: 7 * day, ID: "slides", Flags: flags(imap.FlagSeen),
			Text:        "Attached, the slides as a PDF.\r\n",
			Attachments: []Attachment{{Name: "review.pdf", ContentType: "application/pdf", Data: demoPDF("Review slides")}}},
		{Folder: "Drafts", From: addrDemo, To: to(addrMaria), Subject: "Trip to Lisbon", Age: time.Hour, ID: "draft-lisbon", Flags: flags(imap.FlagSeen, imap.FlagDraft),
			Text: "Hi María,\r\n\r\nabout the trip in March: \r\n"},
		{Folder: "Trash", From: addrShop, To: to(addrDemo), Subject: "Last chance: 20% off everything", Age: 10 * day, ID: "promo", Flags: flags(imap.FlagSeen),
			HTML: "<p>Last chance: <b>20% off</b> everything until midnight.</p>"},
		{Folder: "Junk", From: addrSpam, To: to(addrDemo), Subject: "You have WON 1.000.000 €!!!", Age: 12 * time.Hour, ID: "spam",
			Text: "Send us your bank details to claim your prize.\r\n"},
		{Folder: "Projects", From: addrAlex, To: to(addrDemo), Subject: "Project list for Q1", Age: 12 * day, ID: "q1", Flags: flags(imap.FlagSeen),
			Text: "- easgate phone tests\r\n- IMAP NOTIFY support\r\n- documentation\r\n"},
		{Folder: "Projects/Easgate", From: addrKenji, To: to(addrDemo), Subject: "iPhone test results", Age: 20 * time.Hour, ID: "iphone", Flags: flags(imap.FlagFlagged),
			Text: "All 19 checklist items pass on iOS 18. Push arrives in about a second.\r\n"},
		{Folder: "Receipts", From: addrShop, To: to(addrDemo), Subject: "Receipt for order 2026-098", Age: 14 * day, ID: "receipt098", Flags: flags(imap.FlagSeen),
			Text:        "Receipt attached.\r\n",
			Attachments: []Attachment{{Name: "receipt-2026-098.pdf", ContentType: "application/pdf", Data: demoPDF("Receipt 2026-098: EUR 17.50")}}},
	}
}

// AlexMessages returns the second demo account's mail.
func AlexMessages() []Message {
	return []Message{
		{Folder: "INBOX", From: addrTeam, To: to(addrAlex), Subject: "Welcome to the easgate demo", Age: 2 * time.Hour, ID: "welcome-alex",
			Text: "Hi Alex,\r\n\r\nthis is the second demo account; mail sent to alex@example.com arrives here.\r\n"},
	}
}

func to(a ...*mail.Address) []*mail.Address { return a }
func flags(f ...imap.Flag) []imap.Flag      { return f }

// msgID builds the Message-ID of a seeded message.
func msgID(id string) string { return id + "@demo.easgate.example" }

// Render returns the message in RFC 5322 form, dated now-m.Age.
func (m *Message) Render(now time.Time) ([]byte, error) {
	var h mail.Header
	h.SetDate(now.Add(-m.Age))
	h.SetAddressList("From", []*mail.Address{m.From})
	h.SetAddressList("To", m.To)
	if len(m.Cc) > 0 {
		h.SetAddressList("Cc", m.Cc)
	}
	h.SetSubject(m.Subject) // RFC 2047 encoded when not ASCII
	h.SetMessageID(msgID(m.ID))
	if m.InReplyTo != "" {
		h.SetMsgIDList("In-Reply-To", []string{msgID(m.InReplyTo)})
		h.SetMsgIDList("References", []string{msgID(m.InReplyTo)})
	}
	h.Set("MIME-Version", "1.0")

	var buf bytes.Buffer
	var err error
	if len(m.Attachments) == 0 {
		err = m.writeBody(&buf, h)
	} else {
		err = m.writeMixed(&buf, h)
	}
	if err != nil {
		return nil, fmt.Errorf("demo: render %q: %w", m.Subject, err)
	}
	return buf.Bytes(), nil
}

func textHeader(mediaType string) mail.InlineHeader {
	var h mail.InlineHeader
	h.SetContentType(mediaType, map[string]string{"charset": "utf-8"})
	return h
}

// writeBody writes a message without attachments: one text part, or
// multipart/alternative with both.
func (m *Message) writeBody(buf *bytes.Buffer, h mail.Header) error {
	switch {
	case m.Text != "" && m.HTML != "":
		w, err := mail.CreateInlineWriter(buf, h)
		if err != nil {
			return err
		}
		if err := m.writeAlternatives(w); err != nil {
			return err
		}
		return w.Close()
	case m.HTML != "":
		h.SetContentType("text/html", map[string]string{"charset": "utf-8"})
	default:
		h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	}
	w, err := mail.CreateSingleInlineWriter(buf, h)
	if err != nil {
		return err
	}
	body := m.Text
	if body == "" {
		body = m.HTML
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	return w.Close()
}

func (m *Message) writeAlternatives(w *mail.InlineWriter) error {
	for _, p := range []struct{ typ, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		if p.body == "" {
			continue
		}
		pw, err := w.CreatePart(textHeader(p.typ))
		if err != nil {
			return err
		}
		if _, err := pw.Write([]byte(p.body)); err != nil {
			return err
		}
		if err := pw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// writeMixed writes multipart/mixed: the text (or alternatives), then the
// attachments.
func (m *Message) writeMixed(buf *bytes.Buffer, h mail.Header) error {
	w, err := mail.CreateWriter(buf, h)
	if err != nil {
		return err
	}
	iw, err := w.CreateInline()
	if err != nil {
		return err
	}
	if err := m.writeAlternatives(iw); err != nil {
		return err
	}
	if err := iw.Close(); err != nil {
		return err
	}
	for _, a := range m.Attachments {
		var ah mail.AttachmentHeader
		ah.SetContentType(a.ContentType, nil)
		ah.SetFilename(a.Name)
		aw, err := w.CreateAttachment(ah)
		if err != nil {
			return err
		}
		if _, err := aw.Write(a.Data); err != nil {
			return err
		}
		if err := aw.Close(); err != nil {
			return err
		}
	}
	return w.Close()
}

// demoPNG draws a small landscape (sky, a mountain, grass) as a PNG.
func demoPNG() []byte {
	const w, h = 32, 24
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{0x87, 0xce, 0xeb, 0xff} // sky
			peak := 6 + abs(x-16)
			switch {
			case y > 18:
				c = color.RGBA{0x3c, 0xb3, 0x71, 0xff} // grass
			case y >= peak:
				c = color.RGBA{0x80, 0x80, 0x80, 0xff} // rock
				if y < peak+2 {
					c = color.RGBA{0xff, 0xff, 0xff, 0xff} // snow
				}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic("demo: encoding a fixed in-memory image cannot fail: " + err.Error())
	}
	return buf.Bytes()
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// demoPDF returns a one-page PDF 1.4 document showing line, with a correct
// cross-reference table, so that viewers on the phone open it.
func demoPDF(line string) []byte {
	line = strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(line)
	content := "BT /F1 18 Tf 72 720 Td (" + line + ") Tj ET"
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// longText is a body long enough for truncation (BodyPreference
// TruncationSize) to matter.
func longText() string {
	var b strings.Builder
	b.WriteString("Notes on sync state\r\n===================\r\n\r\n")
	paras := []string{
		"Every Sync response carries a new SyncKey. The phone may never see that response, so the server keeps the previous state as well and accepts the old key once more.",
		"Two requests with the same key can race. The store's compare-and-set makes sure only one of them moves the state forward; the other gets a conflict and retries.",
		"A repeated SyncKey 0 starts over for that one collection only. The folder hierarchy and the other collections keep their state.",
		"Ping holds the request open until something changes or the heartbeat interval runs out. IMAP IDLE wakes it; so does a change made through another device.",
	}
	for i := range 12 {
		b.WriteString(paras[i%len(paras)])
		b.WriteString("\r\n\r\n")
	}
	return b.String()
}
