package mailitem

import (
	"encoding/binary"
	"math/rand/v2"
	"net/mail"
	"slices"
	"testing"
	"time"
)

// The Date handling of the package before its calendar arithmetic
// (commit 5bb550f), kept as the reference the new code must match: it
// used time.Date, time.In and time.Format, whose results are not in
// doubt. Only the names differ.

func refParseDate(v string) (time.Time, error) {
	if t, ok := refParseCommonDate(v); ok {
		return t, nil
	}
	if t, err := time.Parse(rfc5322Date, v); err == nil {
		return t, nil
	}
	return mail.ParseDate(v)
}

func refParseCommonDate(v string) (t time.Time, ok bool) {
	if len(v) < len("Mon, 2 ") || v[3] != ',' || v[4] != ' ' || !slices.Contains(shortDays[:], v[:3]) {
		return time.Time{}, false
	}
	v = v[5:]
	day, n := 0, 0
	for ; n < 2 && '0' <= v[n] && v[n] <= '9'; n++ {
		day = day*10 + int(v[n]-'0')
	}
	v = v[n:]
	if n == 0 || len(v) != 24 || v[0] != ' ' || v[4] != ' ' || v[9] != ' ' || v[12] != ':' || v[15] != ':' || v[18] != ' ' || v[19] != '+' && v[19] != '-' {
		return time.Time{}, false
	}
	month := slices.Index(shortMonths[:], v[1:4]) + 1
	year, ok1 := digits(v[5:9])
	hour, ok2 := digits(v[10:12])
	minute, ok3 := digits(v[13:15])
	sec, ok4 := digits(v[16:18])
	zh, ok5 := digits(v[20:22])
	zm, ok6 := digits(v[22:24])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month == 0 || day < 1 || day > refDaysIn(time.Month(month), year) ||
		hour > 23 || minute > 59 || sec > 59 || zh > 23 || zm > 59 {
		return time.Time{}, false
	}
	off := (zh*60 + zm) * 60
	if v[19] == '-' {
		off = -off
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC).Add(-time.Duration(off) * time.Second)
	if _, local := t.In(time.Local).Zone(); local == off {
		return t.In(time.Local), true
	}
	return t.In(time.FixedZone("", off)), true
}

func refDaysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func refFormatDate(t time.Time) string {
	t = t.UTC()
	if t.Year() < 1 || t.Year() > 9999 {
		t = time.Unix(0, 0).UTC()
	}
	return t.Format("2006-01-02T15:04:05.000Z")
}

// refItemDates is what the old builder.received and
// builder.conversationIndex made of a message's Date field v:
// DateReceived as written and ConversationIndex.
func refItemDates(h *header, internal time.Time) (string, [5]byte) {
	received := func() time.Time {
		if !internal.IsZero() {
			return internal
		}
		if t, err := refParseDate(h.Get("Date")); err == nil {
			return t
		}
		return time.Unix(0, 0)
	}
	t, err := refParseDate(h.Get("Date"))
	if err != nil {
		t = received()
	}
	const epochDiff = 116444736000000000
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(t.UnixNano()/100+epochDiff)>>24)
	return refFormatDate(received()), [5]byte(buf[3:])
}

// itemDates is the same from the builder as it is now.
func itemDates(h header, internal time.Time) (string, [5]byte) {
	b := builder{hdr: h, meta: Meta{InternalDate: internal}}
	return formatDate(b.received()), b.conversationIndex()
}

// dateEdgeCases are Date field values at the edges of what RFC 5322
// 3.3 and 4.3 allow and of what the fast path takes.
var dateEdgeCases = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Thu, 1 Jan 1970 00:00:00 +0000",
	"Wed, 31 Dec 1969 23:59:59 +0000",
	"Mon, 1 Jan 1900 00:00:00 +0000",
	"Fri, 31 Dec 1600 12:00:00 +0000",
	"Sat, 1 Jan 0000 00:00:00 +0000",
	"Sat, 29 Feb 0000 00:00:00 +0000",
	"Mon, 1 Jan 0001 00:00:00 +0000",
	"Mon, 1 Jan 0001 00:00:00 +0100",  // 31 Dec of year 0 in UTC
	"Fri, 31 Dec 9999 23:59:59 -0100", // year 10000 in UTC
	"Fri, 31 Dec 9999 23:59:59 +0000",
	"Sat, 1 Jan 10000 00:00:00 +0000",
	"Mon, 1 Jan -001 00:00:00 +0000",
	"Sat, 1 Jan 1677 00:00:00 +0000", // UnixNano's range
	"Sat, 12 Apr 2262 00:00:00 +0000",
	"Thu, 29 Feb 1900 10:00:00 +0000", // not a leap year
	"Tue, 29 Feb 2000 10:00:00 +0000",
	"Mon, 29 Feb 2100 10:00:00 +0000", // not a leap year
	"Thu, 29 Feb 2024 10:00:00 +0000",
	"Fri, 29 Feb 2026 10:00:00 +0000", // not a leap year
	"Thu, 28 Feb 2026 10:00:00 +0000",
	"Thu, 31 Apr 2026 10:00:00 +0000",
	"Tue, 31 Jun 2026 10:00:00 +0000",
	"Thu, 31 Sep 2026 10:00:00 +0000",
	"Tue, 31 Nov 2026 10:00:00 +0000",
	"Sat, 31 Jan 2026 10:00:00 +0000",
	"Thu, 31 Dec 2026 10:00:00 +0000",
	"Mon, 0 Jan 2026 10:00:00 +0000",
	"Mon, 32 Jan 2026 10:00:00 +0000",
	"Mon, 02 Jan 2006 15:04:05 -0700",
	"Mon, 002 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 +1400",
	"Mon, 2 Jan 2006 15:04:05 -1200",
	"Mon, 2 Jan 2006 15:04:05 +0530",
	"Mon, 2 Jan 2006 15:04:05 +0545",
	"Mon, 2 Jan 2006 15:04:05 -0000",
	"Mon, 2 Jan 2006 15:04:05 +9959",
	"Mon, 2 Jan 2006 15:04:05 +2359",
	"Mon, 2 Jan 2006 15:04:05 +2400",
	"Mon, 2 Jan 2006 15:04:05 +0060",
	"Mon, 2 Jan 2006 15:04:05 +0099",
	"Mon, 2 Jan 2006 15:04:05 0700",
	"Mon, 2 Jan 2006 15:04:05 +070",
	"Mon, 2 Jan 2006 15:04:05 +07000",
	"Mon, 2 Jan 2006 15:04:05 UT",
	"Mon, 2 Jan 2006 15:04:05 GMT",
	"Mon, 2 Jan 2006 15:04:05 EST",
	"Mon, 2 Jan 2006 15:04:05 EDT",
	"Mon, 2 Jan 2006 15:04:05 CST",
	"Mon, 2 Jan 2006 15:04:05 CDT",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04:05 PST",
	"Mon, 2 Jan 2006 15:04:05 PDT",
	"Mon, 2 Jan 2006 15:04:05 Z",
	"Mon, 2 Jan 2006 15:04:05 A",
	"Mon, 2 Jan 2006 15:04:05 M",
	"Mon, 2 Jan 2006 15:04:05 N",
	"Mon, 2 Jan 2006 15:04:05 Y",
	"Mon, 2 Jan 2006 15:04:05 J",
	"Mon, 2 Jan 2006 15:04:05 XYZ",
	"Mon, 2 Jan 2006 15:04:05 CEST",
	"Mon, 2 Jan 2006 15:04:05 -0700 (MST)",
	"Mon, 2 Jan 2006 15:04:05 +0000 (UTC)",
	"Mon, 2 Jan 2006 15:04:05 +0000 (Coordinated (nested) Time)",
	"Mon, 2 Jan 2006 15:04:05 +0000 (unclosed",
	"Mon, 2 Jan 2006 (comment) 15:04:05 +0000",
	"(lead) Mon, 2 Jan 2006 15:04:05 +0000",
	"Mon, 2 Jan 2006 23:59:60 +0000", // a leap second
	"Sat, 31 Dec 2016 23:59:60 +0000",
	"Mon, 2 Jan 2006 23:59:61 +0000",
	"Mon, 2 Jan 2006 24:00:00 +0000",
	"Mon, 2 Jan 2006 23:60:00 +0000",
	"Mon, 2 Jan 2006 15:04 -0700",
	"Mon, 2 Jan 2006 15:04 +0000",
	"2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04 -0700",
	"02 Jan 2006 15:04:05 -0700",
	"Tue, 2 Jan 2006 15:04:05 -0700", // wrong day of week
	"Sun, 2 Jan 2006 15:04:05 -0700",
	"Xyz, 2 Jan 2006 15:04:05 -0700",
	"mon, 2 jan 2006 15:04:05 -0700",
	"MON, 2 JAN 2006 15:04:05 -0700",
	"Monday, 2 January 2006 15:04:05 -0700",
	"Mon, 2 Jan 06 15:04:05 -0700", // obsolete two-digit years
	"Mon, 2 Jan 49 15:04:05 -0700",
	"Mon, 2 Jan 50 15:04:05 -0700",
	"Mon, 2 Jan 68 15:04:05 -0700",
	"Mon, 2 Jan 69 15:04:05 -0700",
	"Mon, 2 Jan 99 15:04:05 -0700",
	"Mon, 2 Jan 00 15:04:05 -0700",
	"Mon, 2 Jan 106 15:04:05 -0700", // obsolete three-digit year
	"Mon, 2 Jan 999 15:04:05 -0700",
	"Mon, 2 Jan 02006 15:04:05 -0700",
	"Mon,  2 Jan 2006 15:04:05 -0700", // extra white space
	"Mon, 2  Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan  2006 15:04:05 -0700",
	"Mon, 2 Jan 2006  15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05  -0700",
	"  Mon, 2 Jan 2006 15:04:05 -0700  ",
	"Mon,2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 -0700 ",
	"Mon, 2 Jan 2006\t15:04:05 -0700",
	"Mon, 2 Jan 2006 1:4:5 -0700",
	"Mon, 2 Jan 2006 01:04:05.123 -0700",
	"Mon, 2 Jan 2006 15:04:05 -0700 extra",
	"Mon, 2 Jan 2006 15:04:05",
	"Mon, 2 Jan 2006",
	"Mon, 2 Jan",
	"Mon, 2 ",
	"Mon, 2",
	"Mon, ",
	"",
	" ",
	"garbage",
	"\x00\xff\xfe",
	"Mon, 2 Jan 2006 15:04:05 -0700\x00",
	"Mon, ٢ Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan ２００６ 15:04:05 -0700",
	"2006-01-02T15:04:05Z",
	"1136239445",
}

// TestDateAsOld: the calendar arithmetic of commonDate, daysSinceEpoch,
// daysIn and formatDate gives what the time package gave, byte for byte,
// in DateReceived and ConversationIndex, and parseDate the same instant
// and zone, for every edge case but those in the obsolete syntax, which
// obsDate rewrites.
func TestDateAsOld(t *testing.T) {
	for _, v := range dateEdgeCases {
		checkDateAsOld(t, v)
	}
	// Every day of the years at the edges of the calendar rules, at the
	// edges of a day, with offsets at the edges of the zones.
	r := rand.New(rand.NewPCG(5, 3))
	for _, year := range []int{0, 1, 99, 100, 1600, 1677, 1678, 1900, 1969, 1970, 2000, 2038, 2100, 2262, 2263, 9999} {
		for month := 1; month <= 12; month++ {
			for day := 1; day <= 31; day++ {
				d := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
				sign := "+-"[r.IntN(2)]
				v := shortDays[d.Weekday()] + ", " + itoa(day) + " " + shortMonths[month-1] + " " + pad(year, 4) + " " +
					pad(r.IntN(24), 2) + ":" + pad(r.IntN(60), 2) + ":" + pad(r.IntN(60), 2) + " " + string(sign) + pad(r.IntN(15), 2) + pad(r.IntN(60), 2)
				checkDateAsOld(t, v)
			}
		}
	}
}

// FuzzDateAsOld is TestDateAsOld over any Date value.
func FuzzDateAsOld(f *testing.F) {
	for _, v := range dateEdgeCases {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		checkDateAsOld(t, v)
	})
}

func checkDateAsOld(t *testing.T, v string) {
	t.Helper()
	if _, ok := obsDate(v); ok {
		// Read as RFC 5322 4.3 means it now, on purpose
		// (TestObsoleteDates).
		return
	}
	got, gotErr := parseDate(v)
	want, wantErr := refParseDate(v)
	if (gotErr == nil) != (wantErr == nil) || !got.Equal(want) || got.Location().String() != want.Location().String() {
		t.Errorf("parseDate(%q) = %v, %v; the old code gave %v, %v", v, got, gotErr, want, wantErr)
	}
	if gotErr == nil {
		gn, go_ := got.Zone()
		wn, wo := want.Zone()
		if gn != wn || go_ != wo {
			t.Errorf("parseDate(%q) zone %q %d; the old code gave %q %d", v, gn, go_, wn, wo)
		}
	}
	if sec, off, ok := commonDate(v); ok {
		w, wok := refParseCommonDate(v)
		if _, woff := w.Zone(); !wok || sec != w.Unix() || off != woff {
			t.Errorf("commonDate(%q) = %d, %d; the old code gave %v, %v", v, sec, off, w, wok)
		}
	} else if _, wok := refParseCommonDate(v); wok {
		t.Errorf("commonDate(%q) fails; the old code took it", v)
	}
	h := parseHeader([]byte("Date: " + v + "\r\n\r\n"))
	for _, internal := range []time.Time{{}, time.Date(2025, 3, 4, 5, 6, 7, 891e6, time.FixedZone("", 3600))} {
		gotReceived, gotIndex := itemDates(h, internal)
		wantReceived, wantIndex := refItemDates(&h, internal)
		if gotReceived != wantReceived || gotIndex != wantIndex {
			t.Errorf("Date %q (INTERNALDATE %v): DateReceived %s, ConversationIndex %x; the old code gave %s, %x",
				v, internal, gotReceived, gotIndex, wantReceived, wantIndex)
		}
	}
}

// FuzzFormatDateAsOld: formatDate writes any instant, in any zone, as
// time.Format did.
func FuzzFormatDateAsOld(f *testing.F) {
	f.Add(int64(0), int64(0), int32(0))
	f.Add(int64(-62135596801), int64(999999999), int32(-3600))
	f.Add(int64(253402300799), int64(999999999), int32(50400))
	f.Fuzz(func(t *testing.T, sec, nsec int64, off int32) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("", int(off)))
		if got, want := formatDate(tm), refFormatDate(tm); got != want {
			t.Errorf("formatDate(%v) = %q; the old code gave %q", tm, got, want)
		}
	})
}

func itoa(n int) string { return pad(n, 1) }

// pad writes n (>= 0) in decimal with at least width digits.
func pad(n, width int) string {
	var b []byte
	for n > 0 || len(b) < width {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
