package mailitem

import (
	"net/mail"
	"testing"
)

// TestParseDate: the fast path gives what net/mail.ParseDate gives, for
// the common layout and for the ones it leaves to ParseDate.
func TestParseDate(t *testing.T) {
	for _, v := range []string{
		"Mon, 02 Jan 2006 15:04:05 -0700",
		"Tue, 3 Feb 2026 01:02:03 +0100",
		"Fri, 27 Nov 2026 23:59:59 +0000",
		"Wed, 31 Dec 1969 23:59:59 -1200",
		"Sun, 1 Mar 2026 12:00:00 +1400",
		"Mon, 02 Jan 2006 15:04:05 -0700 (MST)",
		"2 Jan 2006 15:04:05 -0700",
		"Mon, 2 Jan 06 15:04 GMT",
		"Thu, 20 Nov 1997 09:55:06 MDT",
		" Mon, 02 Jan 2006 15:04:05 -0700",
		"Mon, 02 Jan 2006 15:04:05 -0700\r\n",
		"Mon, 32 Jan 2006 15:04:05 -0700",
		"yesterday",
		"",
	} {
		want, werr := mail.ParseDate(v)
		got, err := parseDate(v)
		if (err == nil) != (werr == nil) || !got.Equal(want) || got.Format(rfc5322Date) != want.Format(rfc5322Date) {
			t.Errorf("parseDate(%q) = %v, %v; net/mail: %v, %v", v, got, err, want, werr)
		}
	}
}
