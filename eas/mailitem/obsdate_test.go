package mailitem

import (
	"testing"
	"time"
)

// TestObsoleteDates: Dates in the obsolete syntax of RFC 5322 4.3, and
// with the comments and folding white space of 3.3, mean the instant the
// RFC gives them, whatever the gateway's own zone.
func TestObsoleteDates(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s int) time.Time {
		return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
	}
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"Mon, 2 Jan 2006 15:04:05 EST", utc(2006, 1, 2, 20, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 edt", utc(2006, 1, 2, 19, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 CST", utc(2006, 1, 2, 21, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 CDT", utc(2006, 1, 2, 20, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 MST", utc(2006, 1, 2, 22, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 MDT", utc(2006, 1, 2, 21, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 PST", utc(2006, 1, 2, 23, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 PDT", utc(2006, 1, 2, 22, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 UT", utc(2006, 1, 2, 15, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 GMT", utc(2006, 1, 2, 15, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 Z", utc(2006, 1, 2, 15, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 A", utc(2006, 1, 2, 15, 4, 5)},
		{"2 Jan 2006 15:04 EST", utc(2006, 1, 2, 20, 4, 0)},
		{"Mon, 2 Jan 06 15:04:05 -0700", utc(2006, 1, 2, 22, 4, 5)},
		{"Mon, 2 Jan 49 15:04:05 +0000", utc(2049, 1, 2, 15, 4, 5)},
		{"Thu, 2 Jan 50 15:04:05 +0000", utc(1950, 1, 2, 15, 4, 5)},
		{"Tue, 2 Jan 68 15:04:05 +0000", utc(1968, 1, 2, 15, 4, 5)},
		{"Mon, 2 Jan 106 15:04:05 +0000", utc(2006, 1, 2, 15, 4, 5)},
		{"Sat, 31 Dec 2016 23:59:60 +0000", utc(2016, 12, 31, 23, 59, 59)},
		{"Mon, 2 Jan 2006 15:04:05 +0000 (Coordinated Universal Time)", utc(2006, 1, 2, 15, 4, 5)},
		{"Mon, 2 Jan 2006 (a (nested) comment) 15:04:05 -0100", utc(2006, 1, 2, 16, 4, 5)},
		{"Mon,\t2 Jan 2006\r\n 15:04:05 +0000", utc(2006, 1, 2, 15, 4, 5)},
		{"Mon , 2 Jan 2006 15:04:05 +0000", utc(2006, 1, 2, 15, 4, 5)},
	} {
		for _, zone := range []string{"UTC", "America/New_York", "America/Denver", "Asia/Kolkata"} {
			loc, err := time.LoadLocation(zone)
			if err != nil {
				loc = time.FixedZone(zone, 0)
			}
			old := time.Local
			time.Local = loc
			got, err := parseDate(c.in)
			time.Local = old
			if err != nil || !got.Equal(c.want) {
				t.Errorf("parseDate(%q) in %s = %v, %v; want %v", c.in, zone, got, err, c.want)
			}
		}
	}
	// What was read before is read as before.
	for _, v := range []string{"Mon, 2 Jan 2006 15:04:05 -0700", "2 Jan 2006 15:04:05 +0100", "Mon, 2 Jan 2006 15:04 -0700"} {
		if n, ok := obsDate(v); ok {
			t.Errorf("obsDate(%q) rewrote it to %q", v, n)
		}
	}
}
