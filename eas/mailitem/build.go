package mailitem

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/easgate/easgate/wbxml"
)

// Item is a converted message.
type Item struct {
	// ApplicationData is the airsync:ApplicationData element.
	ApplicationData *wbxml.Element
	// MessageClass is the email:MessageClass sent ("IPM.Note", ...).
	MessageClass string
	// BodyType is the type of the body sent.
	BodyType BodyType
	// Warnings say what was wrong with the message and how it was worked
	// around (malformed MIME, nesting cut off). For the log; never shown
	// to the phone.
	Warnings []string
}

// Properties returns the item's fields as itemoperations:Properties, the
// form an ItemOperations Fetch of a whole item answers with (MS-ASCMD
// 2.2.3.139). The children are shared with ApplicationData.
func (it *Item) Properties() *wbxml.Element {
	return &wbxml.Element{Tag: wbxml.ItemOperationsProperties, Children: it.ApplicationData.Children}
}

// WarningSource is implemented by Sources that found problems while
// reading the message; Build adds them to Item.Warnings.
type WarningSource interface {
	Warnings() []string
}

// Message classes (MS-ASEMAIL 2.2.2.49).
const (
	ClassNote                 = "IPM.Note"
	ClassSMIME                = "IPM.Note.SMIME"
	ClassSMIMEMultipartSigned = "IPM.Note.SMIME.MultipartSigned"
)

// The flag element's values (MS-ASEMAIL 2.2.2.34, 2.2.2.35).
const (
	flagActive  = "2"
	flagTypeFUP = "Flag for follow up"
)

// notCategories are IMAP keywords that are bookkeeping, not a user's
// categories (compared in lower case).
var notCategories = map[string]bool{
	"$forwarded": true, "$mdnsent": true, "$junk": true, "$notjunk": true,
	"junk": true, "notjunk": true, "nonjunk": true, "$phishing": true,
	"$submitpending": true, "$submitted": true, "$hasattachment": true,
	"$hasnoattachment": true, "$ismailinglist": true, "$autojunk": true,
	"$autonotjunk": true, "$muted": true, "$notify": true,
}

// maxCategories is the most Category elements Email.xsd allows.
const maxCategories = 300

// builder holds the state of one conversion.
type builder struct {
	ctx   context.Context
	src   Source
	opts  Options
	ver   int
	meta  Meta
	hdr   header
	lay   layout
	class string
	// cache holds the last sections read: a build reads at most two
	// parts (the body's and the Preview's), one of them perhaps again
	// with a larger window. An array, so that the builder stays off
	// the heap.
	cache    [2]section
	cached   int // sections ever put in cache
	warnings []string
	el       elements // the item's elements

	// date is the Date header parsed (dateErr when it does not parse),
	// once dateRead: DateReceived and ConversationIndex both need it.
	date     time.Time
	dateErr  error
	dateRead bool
}

// section is a fetched section body.
type section struct {
	path []int
	data []byte
	more bool
}

// newBuilder returns a builder to convert src. It is a value in the
// caller's frame rather than allocated (a builder does not outlive its
// Build), readied by init.
func newBuilder(ctx context.Context, src Source, opts Options) builder {
	return builder{ctx: ctx, src: src, opts: opts, ver: opts.version(), meta: src.Meta()}
}

// init reads the structure and header of the message.
func (b *builder) init() error {
	ctx, src := b.ctx, b.src
	root, err := src.Structure(ctx)
	if err != nil {
		return &SourceError{Op: "structure", Err: err}
	}
	if root == nil {
		root = &Part{Type: "text", Subtype: "plain", Path: []int{1}}
	}
	if ps, ok := src.(interface{ parsedHeader() header }); ok {
		b.hdr = ps.parsedHeader()
	} else {
		raw, err := src.Header(ctx)
		if err != nil {
			return &SourceError{Op: "header", Err: err}
		}
		b.hdr = parseHeader(raw)
	}
	b.lay.collect(root, 0)
	b.class = messageClass(root)
	if ws, ok := src.(WarningSource); ok {
		b.warnings = append(b.warnings, ws.Warnings()...)
	}
	if b.lay.tooDeep {
		b.warnings = append(b.warnings, "MIME structure nested too deeply: inner parts left out")
	}
	return nil
}

// Build converts the message src into an Email item for a Sync Add or
// Fetch, or an ItemOperations Fetch (MS-ASEMAIL 2.2.2, MS-ASAIRS 2.2.2).
// It reads from src only what the options need. The only errors are the
// Source's, as *SourceError.
func Build(ctx context.Context, src Source, opts Options) (*Item, error) {
	b := newBuilder(ctx, src, opts)
	if err := b.init(); err != nil {
		return nil, err
	}
	return b.item()
}

// item builds the item of Build.
func (b *builder) item() (*Item, error) {
	body, err := b.renderBody()
	if err != nil {
		return nil, err
	}

	// Everything the item says, worked out first, so that its elements
	// can be allocated at once and no more of them than it has.
	h := &b.hdr
	var toBuf, fromBuf [1]address // the usual one address each
	toList := appendAddressList(toBuf[:0], h.Get("To"))
	from := appendAddressList(fromBuf[:0], h.Get("From"))
	to := formatAddresses(toList, ", ")
	cc := formatAddresses(parseAddressList(h.Get("Cc")), ", ")
	fromText := ""
	if len(from) > 0 {
		fromText = formatAddresses(from[:1], "")
	}
	subject := decodeText(h.Get("Subject"))
	replyTo := formatAddresses(parseAddressList(h.Get("Reply-To")), "; ")
	displayTo := displayNames(toList)
	flags := newFlagSet(b.meta.Flags)
	var (
		verb, sender string
		hasSender    bool // (with an empty text for a nameless "")
		catBuf       [4]string
		cats         []string
	)
	if b.ver >= 140 {
		switch {
		case flags.has(`\answered`):
			verb = "1"
		case flags.has("$forwarded"):
			verb = "3"
		}
		if list := parseAddressList(h.Get("Sender")); len(list) > 0 && (len(from) == 0 || !strings.EqualFold(list[0].Addr, from[0].Addr)) {
			sender, hasSender = formatAddresses(list[:1], ""), true
		}
		cats = appendCategories(catBuf[:0], b.meta.Flags)
	}
	draft, bcc := false, ""
	if b.ver >= 160 {
		draft = b.opts.Drafts || flags.has(`\draft`)
		if draft {
			bcc = cutList(formatAddresses(parseAddressList(h.Get("Bcc")), ", "), 1024)
		}
	}
	atts := body.pref.Type != BodyMIME && len(b.lay.atts) > 0

	// The children of ApplicationData: Subject, DateReceived,
	// ThreadTopic, Importance, Read, Body, MessageClass, InternetCPID,
	// Flag, ContentClass and NativeBodyType, those of 14.0 and 16.0 and
	// the optional ones; and under them the elements of the body, the
	// attachments, the flag and the categories.
	kids := 11
	if len(from) > 0 {
		kids++
	}
	if hasSender {
		kids++
	}
	for _, s := range [...]string{to, cc, replyTo, displayTo, verb, bcc} {
		if s != "" {
			kids++
		}
	}
	n := 1 + kids + body.elements() - 1 + flagElements(flags) - 1
	if atts {
		kids++
		n += b.attachmentElements()
	}
	if b.ver >= 140 {
		kids += 3 // ConversationId, ConversationIndex, Categories
		n += 3 + len(cats)
	}
	if b.ver >= 160 {
		kids++ // IsDraft
		n++
	}
	b.el.reserve(n)

	ad := b.el.parent(wbxml.AirSyncApplicationData, kids)
	ad.Add(b.el.opt(wbxml.EmailTo, to))
	ad.Add(b.el.opt(wbxml.EmailCc, cc))
	if len(from) > 0 {
		ad.Add(b.el.t(wbxml.EmailFrom, fromText))
	}
	ad.Add(b.el.t(wbxml.EmailSubject, subject))
	ad.Add(b.el.opt(wbxml.EmailReplyTo, replyTo))
	ad.Add(b.el.t(wbxml.EmailDateReceived, formatDate(b.received())))
	ad.Add(b.el.opt(wbxml.EmailDisplayTo, displayTo))
	ad.Add(b.el.t(wbxml.EmailThreadTopic, threadTopic(subject)))
	ad.Add(b.el.t(wbxml.EmailImportance, strconv.Itoa(importance(h.Get("Importance"), h.Get("X-Priority"), h.Get("Priority")))))
	ad.Add(b.el.t(wbxml.EmailRead, boolText(flags.has(`\seen`))))
	ad.Add(b.bodyElement(&body))
	if atts {
		ad.Add(b.attachments())
	}
	ad.Add(b.el.t(wbxml.EmailMessageClass, b.class))
	ad.Add(b.el.t(wbxml.EmailInternetCPID, "65001"))
	ad.Add(flagElement(&b.el, flags))
	ad.Add(b.el.t(wbxml.EmailContentClass, "urn:content-classes:message"))
	ad.Add(b.el.t(wbxml.AirSyncBaseNativeBodyType, strconv.Itoa(int(b.lay.nativeType()))))
	if b.ver >= 140 {
		// Both opaque values in one allocation.
		id, index := b.conversationID(subject), b.conversationIndex()
		conv := append(append(make([]byte, 0, len(id)+len(index)), id[:]...), index[:]...)
		ad.Add(b.el.o(wbxml.Email2ConversationId, conv[:len(id):len(id)]))
		ad.Add(b.el.o(wbxml.Email2ConversationIndex, conv[len(id):]))
		ad.Add(b.el.opt(wbxml.Email2LastVerbExecuted, verb))
		if hasSender {
			ad.Add(b.el.t(wbxml.Email2Sender, sender))
		}
		ad.Add(categories(&b.el, cats))
	}
	if b.ver >= 160 {
		ad.Add(b.el.opt(wbxml.Email2Bcc, bcc))
		ad.Add(b.el.t(wbxml.Email2IsDraft, boolText(draft)))
	}
	return &Item{ApplicationData: ad, MessageClass: b.class, BodyType: body.pref.Type, Warnings: b.warnings}, nil
}

// BuildBody returns only the airsyncbase:Body element for the options,
// as an ItemOperations Fetch of a body needs it.
func BuildBody(ctx context.Context, src Source, opts Options) (*wbxml.Element, error) {
	b := newBuilder(ctx, src, opts)
	if err := b.init(); err != nil {
		return nil, err
	}
	return b.bodyOnly()
}

// bodyOnly builds the element of BuildBody.
func (b *builder) bodyOnly() (*wbxml.Element, error) {
	body, err := b.renderBody()
	if err != nil {
		return nil, err
	}
	b.el.reserve(body.elements())
	return b.bodyElement(&body), nil
}

// ChangeData returns the ApplicationData of a Sync Change for a message
// whose flags changed: Read, Flag and, from 14.0, Categories (MS-ASCMD
// 2.2.3.24; digest 4.2). An empty Categories clears the phone's.
func ChangeData(flags []string, opts Options) *wbxml.Element {
	var el elements
	return changeData(&el, flags, opts)
}

// changeData is ChangeData making its elements with el.
func changeData(el *elements, flags []string, opts Options) *wbxml.Element {
	fs := newFlagSet(flags)
	var (
		catBuf [4]string
		cats   []string
	)
	kids := 2 // Read, Flag
	if opts.version() >= 140 {
		cats = appendCategories(catBuf[:0], flags)
		kids++ // Categories
	}
	el.reserve(1 + kids + flagElements(fs) - 1 + len(cats))
	ad := el.parent(wbxml.AirSyncApplicationData, kids)
	ad.Add(el.t(wbxml.EmailRead, boolText(fs.has(`\seen`))), flagElement(el, fs))
	if opts.version() >= 140 {
		ad.Add(categories(el, cats))
	}
	return ad
}

// flagSet is a message's flags, looked up without regard to case.
type flagSet []string

func newFlagSet(flags []string) flagSet { return flagSet(flags) }

// has reports whether the set holds f, which is in lower case ASCII
// without a "k" (the one letter a non-ASCII character, the Kelvin sign,
// lowers to): compared in ASCII, as strings.ToLower(flag) == f compares.
func (fs flagSet) has(f string) bool {
	for _, flag := range fs {
		if len(flag) == len(f) && equalFoldASCII(flag, f) {
			return true
		}
	}
	return false
}

func boolText(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// flagElement is email:Flag: empty when not flagged, else an active
// follow-up flag (MS-ASEMAIL 2.2.2.34).
func flagElement(el *elements, fs flagSet) *wbxml.Element {
	if !fs.has(`\flagged`) {
		return el.next(wbxml.EmailFlag)
	}
	return el.parent(wbxml.EmailFlag, 2).Add(
		el.t(wbxml.EmailStatus, flagActive),
		el.t(wbxml.EmailFlagType, flagTypeFUP))
}

// flagElements is the number of elements flagElement makes.
func flagElements(fs flagSet) int {
	if !fs.has(`\flagged`) {
		return 1
	}
	return 3
}

// categories is email:Categories holding cats.
func categories(el *elements, cats []string) *wbxml.Element {
	e := el.parent(wbxml.EmailCategories, len(cats))
	for _, c := range cats {
		e.Add(el.t(wbxml.EmailCategory, c))
	}
	return e
}

// appendCategories appends to dst the categories of a message with
// flags: its IMAP keywords that are not system flags or bookkeeping
// keywords, as Category texts.
func appendCategories(dst []string, flags []string) []string {
	start := len(dst)
	var seen map[string]bool
	for _, f := range flags {
		if f == "" || strings.HasPrefix(f, `\`) {
			continue // system flags
		}
		lf := strings.ToLower(f)
		if notCategories[lf] || seen[lf] {
			continue
		}
		if seen == nil {
			seen = make(map[string]bool)
		}
		if len(dst)-start == maxCategories {
			break
		}
		seen[lf] = true
		dst = append(dst, cleanText(f))
	}
	return dst
}

// received is the time for DateReceived: INTERNALDATE, else the Date
// header, else the Unix epoch.
func (b *builder) received() time.Time {
	if !b.meta.InternalDate.IsZero() {
		return b.meta.InternalDate
	}
	if t, err := b.headerDate(); err == nil {
		return t
	}
	return time.Unix(0, 0)
}

// headerDate is the Date header parsed, read and parsed once.
func (b *builder) headerDate() (time.Time, error) {
	if !b.dateRead {
		v := b.hdr.Get("Date")
		if sec, _, ok := commonDate(v); ok {
			b.date = time.Unix(sec, 0) // the zone is of no use here
		} else {
			b.date, b.dateErr = parseDate(v)
		}
		b.dateRead = true
	}
	return b.date, b.dateErr
}

// rfc5322Date is the Date layout nearly every message uses (RFC 5322
// 3.3 with day of week, seconds and a numeric zone).
const rfc5322Date = "Mon, 2 Jan 2006 15:04:05 -0700"

// parseDate parses a Date header as net/mail.ParseDate does, trying
// the common layout first: ParseDate tries two dozen layouts without a
// day of week before it, each failure costing an error value, which made
// it a tenth of the time spent building a Sync window.
func parseDate(v string) (time.Time, error) {
	if t, ok := parseCommonDate(v); ok {
		return t, nil
	}
	if t, err := time.Parse(rfc5322Date, v); err == nil {
		return t, nil
	}
	if n, ok := obsDate(v); ok {
		v = n
	}
	return mail.ParseDate(v)
}

// obsZones are the zone names of RFC 5322 4.3 with their offsets.
var obsZones = map[string]string{
	"UT": "+0000", "GMT": "+0000",
	"EST": "-0500", "EDT": "-0400", "CST": "-0600", "CDT": "-0500",
	"MST": "-0700", "MDT": "-0600", "PST": "-0800", "PDT": "-0700",
}

// obsDate rewrites a Date written with the obsolete syntax of RFC 5322
// 4.3 (and the folding white space and comments 3.3 allows) into the
// form net/mail.ParseDate reads as the RFC means it: comments removed
// and white space made single spaces; a two-digit year of 00–49 is 20xx
// and of 50–99 19xx, a three-digit year is 1900 more (ParseDate takes
// 50–68 for 2050–2068 and refuses three digits); a zone name is its
// offset (ParseDate takes EST and the others for UTC, unless they are the
// gateway's own zone, so that the same message dated differently on
// different servers) and a military zone letter is -0000, as 4.3 says; a
// leap second (:60) is the second before. ok is false when there is
// nothing to rewrite.
func obsDate(v string) (string, bool) {
	changed := false
	var b strings.Builder
	depth := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
			changed = true
		case c == ')' && depth > 0:
			depth--
			if depth == 0 {
				b.WriteByte(' ')
			}
		case depth > 0:
		case c == '\t' || c == '\r' || c == '\n':
			b.WriteByte(' ')
			changed = true
		default:
			b.WriteByte(c)
		}
	}
	f := strings.Fields(b.String())
	if len(f) > 0 && len(f[0]) == 3 && len(f) > 1 && f[1] == "," {
		f = append([]string{f[0] + ","}, f[2:]...)
		changed = true
	}
	rest := f
	if len(rest) > 0 && strings.HasSuffix(rest[0], ",") {
		rest = rest[1:]
	}
	if len(rest) != 5 {
		return strings.Join(f, " "), changed
	}
	if y, ok := digits(rest[2]); ok && (len(rest[2]) == 2 || len(rest[2]) == 3) {
		switch {
		case len(rest[2]) == 3:
			y += 1900
		case y < 50:
			y += 2000
		default:
			y += 1900
		}
		rest[2] = strconv.Itoa(y)
		changed = true
	}
	if hms := rest[3]; len(hms) == len("15:04:05") && strings.HasSuffix(hms, ":60") {
		rest[3] = hms[:6] + "59"
		changed = true
	}
	zone := strings.ToUpper(rest[4])
	if off, ok := obsZones[zone]; ok {
		rest[4] = off
		changed = true
	} else if len(zone) == 1 && zone[0] >= 'A' && zone[0] <= 'Z' && zone[0] != 'J' {
		rest[4] = "-0000"
		changed = true
	}
	return strings.Join(f, " "), changed
}

var (
	shortDays   = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	shortMonths = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// parseCommonDate parses v when it is written exactly as most mailers
// write a Date — "Mon, 2 Jan 2006 15:04:05 -0700", a one or two digit
// day, the names as written there, every other field with its digits —
// and gives what time.Parse(rfc5322Date, v) gives (tested against it).
// ok is false for anything else, which is left to time.Parse: it was a
// tenth of the time of building a small item.
func parseCommonDate(v string) (t time.Time, ok bool) {
	sec, off, ok := commonDate(v)
	if !ok {
		return time.Time{}, false
	}
	t = time.Unix(sec, 0)
	// As time.Parse: the local zone when it has that offset then.
	if _, local := t.Zone(); local == off {
		return t, true
	}
	return t.In(time.FixedZone("", off)), true
}

// commonDate is parseCommonDate's instant, as Unix seconds, and the
// zone's offset in seconds east of UTC, worked out without the time
// package: for the Date of an item only the instant matters.
func commonDate(v string) (sec int64, off int, ok bool) {
	if len(v) < len("Mon, 2 ") || v[3] != ',' || v[4] != ' ' || !slices.Contains(shortDays[:], v[:3]) {
		return 0, 0, false
	}
	v = v[5:]
	day, n := 0, 0
	for ; n < 2 && '0' <= v[n] && v[n] <= '9'; n++ {
		day = day*10 + int(v[n]-'0')
	}
	v = v[n:] // " Jan 2006 15:04:05 -0700"
	if n == 0 || len(v) != 24 || v[0] != ' ' || v[4] != ' ' || v[9] != ' ' || v[12] != ':' || v[15] != ':' || v[18] != ' ' || v[19] != '+' && v[19] != '-' {
		return 0, 0, false
	}
	month := slices.Index(shortMonths[:], v[1:4]) + 1
	year, ok1 := digits(v[5:9])
	hour, ok2 := digits(v[10:12])
	minute, ok3 := digits(v[13:15])
	s, ok4 := digits(v[16:18])
	zh, ok5 := digits(v[20:22])
	zm, ok6 := digits(v[22:24])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month == 0 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || s > 59 || zh > 23 || zm > 59 {
		return 0, 0, false
	}
	off = (zh*60 + zm) * 60
	if v[19] == '-' {
		off = -off
	}
	return daysSinceEpoch(year, month, day)*86400 + int64(hour*3600+minute*60+s-off), off, true
}

// daysSinceEpoch is the number of days from 1970-01-01 to the given
// date of the proleptic Gregorian calendar (month 1-12): the civil-to-
// days algorithm, counting in 400-year eras from a year that starts in
// March so that the leap day comes last.
func daysSinceEpoch(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400 // January and February of year 0
	}
	yoe := y - era*400
	mp := int64(month+9) % 12 // March is 0
	doy := (153*mp+2)/5 + int64(day) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// digits returns the number s writes in decimal digits only.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// daysIn is the number of days of month (1-12) in year.
func daysIn(month, year int) int {
	if month == 2 {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 30 + (month+month/8)%2 // 31 in Jan, Mar, May, Jul, Aug, Oct, Dec
}

// formatDate writes t as EAS dates are written: UTC with milliseconds.
func formatDate(t time.Time) string {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 1 || year > 9999 {
		t = time.Unix(0, 0).UTC()
		year, month, day = t.Date()
	}
	// t.Format("2006-01-02T15:04:05.000Z") written out: the layout
	// interpreter was most of the cost of a date.
	hour, minute, sec := t.Clock()
	var buf [len("2006-01-02T15:04:05.000Z")]byte
	put := func(i, n, v int) {
		for j := i + n - 1; j >= i; j-- {
			buf[j] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, 4, year)
	buf[4] = '-'
	put(5, 2, int(month))
	buf[7] = '-'
	put(8, 2, day)
	buf[10] = 'T'
	put(11, 2, hour)
	buf[13] = ':'
	put(14, 2, minute)
	buf[16] = ':'
	put(17, 2, sec)
	buf[19] = '.'
	put(20, 3, t.Nanosecond()/1e6)
	buf[23] = 'Z'
	return string(buf[:])
}

// conversationID is a stable 16-byte hash of the thread's root: the first
// References id, else In-Reply-To, else Message-ID, else the normalized
// subject (MS-ASEMAIL 2.2.2.14).
func (b *builder) conversationID(subject string) [md5.Size]byte {
	var buf [128]byte
	key := buf[:0]
	for _, f := range []string{"References", "In-Reply-To", "Message-Id"} {
		if id := firstMessageID(b.hdr.Get(f)); id != "" {
			key = append(append(key, "id:"...), id...)
			break
		}
	}
	if len(key) == 0 {
		if topic := strings.ToLower(strings.Join(strings.Fields(threadTopic(subject)), " ")); topic != "" {
			key = append(append(key, "subject:"...), topic...)
		} else {
			key = strconv.AppendUint(append(key, "uid:"...), uint64(b.meta.UID), 10)
		}
	}
	return md5.Sum(key)
}

// conversationIndex is five bytes of the message's date: the high 40 bits
// of its FILETIME, as the header block of a conversation index holds it
// (MS-ASEMAIL 2.2.2.15).
func (b *builder) conversationIndex() [5]byte {
	t, err := b.headerDate()
	if err != nil {
		t = b.received()
	}
	const epochDiff = 116444736000000000 // 1601-01-01 to 1970-01-01 in 100 ns
	ft := uint64(t.UnixNano()/100 + epochDiff)
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], ft>>24)
	return [5]byte(buf[3:])
}

// cutList cuts a comma-separated list to n bytes at a comma.
func cutList(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	if i := strings.LastIndex(s, ", "); i > 0 {
		return s[:i]
	}
	return truncateUTF8(s, n)
}
