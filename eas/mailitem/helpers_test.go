package mailitem

import "testing"

func TestThreadTopic(t *testing.T) {
	tests := map[string]string{
		"Re: Fwd: AW: hello":  "hello",
		"RE[2]: status":       "status",
		"Réunion: agenda":     "Réunion: agenda",
		"Re:":                 "",
		"Ticket: Re: x":       "Ticket: Re: x",
		"  fw : spaced  ":     "spaced",
		"SV: Vs: TR: nordic":  "nordic",
		"Re：全角コロン":            "全角コロン",
		"no prefix at all":    "no prefix at all",
		"Subject: re: nested": "Subject: re: nested",
	}
	for in, want := range tests {
		if got := threadTopic(in); got != want {
			t.Errorf("threadTopic(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestImportance(t *testing.T) {
	tests := []struct {
		imp, xprio, prio string
		want             int
	}{
		{"", "", "", 1}, {"High", "", "", 2}, {"low", "1", "", 0}, {"", "1 (Highest)", "", 2},
		{"", "2", "", 2}, {"", "3", "", 1}, {"", "5 (Lowest)", "", 0}, {"", "", "urgent", 2},
		{"", "", "non-urgent", 0}, {"bogus", "x", "bogus", 1},
	}
	for _, tt := range tests {
		if got := importance(tt.imp, tt.xprio, tt.prio); got != tt.want {
			t.Errorf("importance(%q, %q, %q) = %d, want %d", tt.imp, tt.xprio, tt.prio, got, tt.want)
		}
	}
}

func TestAddresses(t *testing.T) {
	tests := []struct{ in, list, display string }{
		{`"Doe, John" <j@x.org>, a@x.org`, `"Doe, John" <j@x.org>, a@x.org`, "Doe, John; a@x.org"},
		{`=?utf-8?q?Zo=C3=AB?= "the \"Q\"" <z@x.org>`, `"Zoë the \"Q\"" <z@x.org>`, `Zoë the "Q"`},
		{`Bad <a@@x>, good@x.org`, `"Bad" <a@@x>, good@x.org`, "Bad; good@x.org"},
		{`undisclosed-recipients:;`, "", ""},
		{"J\xf6rg <j@x.org>", `"Jörg" <j@x.org>`, "Jörg"},
		{"", "", ""},
	}
	for _, tt := range tests {
		l := parseAddressList(tt.in)
		if got := formatAddresses(l, ", "); got != tt.list {
			t.Errorf("addresses %q = %q, want %q", tt.in, got, tt.list)
		}
		if got := displayNames(l); got != tt.display {
			t.Errorf("display names %q = %q, want %q", tt.in, got, tt.display)
		}
	}
}

func TestTextHelpers(t *testing.T) {
	if got := sanitize("a\x00b\x01c\td\xffe\uFFFEf\r\n"); got != "abc\td\uFFFDe\uFFFDf\r\n" {
		t.Errorf("sanitize = %q", got)
	}
	for n, want := range map[int]string{0: "", 1: "a", 2: "a", 3: "aé", 4: "aé", 5: "aé", 6: "aé", 7: "aé😀"} {
		if got := truncateUTF8("aé😀", n); got != want {
			t.Errorf("truncateUTF8(%d) = %q, want %q", n, got, want)
		}
	}
	qp := map[string]string{
		"a=3Db":        "a=b",
		"soft=\r\nbr":  "softbr",
		"soft= \nbr":   "softbr",
		"bad=ZZ":       "bad=ZZ",
		"cut short=C3": "cut short\xc3",
		"cut short=C":  "cut short",
		"end=":         "end",
	}
	for in, want := range qp {
		if got := string(decodeQP([]byte(in))); got != want {
			t.Errorf("decodeQP(%q) = %q, want %q", in, got, want)
		}
	}
	b64 := map[string]string{
		"aGVsbG8=":         "hello",
		"aGVs\r\nbG8=":     "hello",
		"aGVsbG8":          "hello",
		"aGVsb":            "hel",
		"a!G@V#s$bG8=junk": "hello",
	}
	for in, want := range b64 {
		if got := string(decodeBase64([]byte(in))); got != want {
			t.Errorf("decodeBase64(%q) = %q, want %q", in, got, want)
		}
	}
	html := `<html><head><title>T</title><STYLE>x{}</STYLE></head><body><p>a &amp; b</p><table><tr><td>1</td><td>2</td></tr></table>` +
		"<script>bad()</script>x&nbsp;&nbsp;y<br>z &#1;&#x1F600;<!-- c -->"
	if got := htmlToText(html); got != "a & b\r\n\r\n1 2\r\nx y\r\nz 😀" {
		t.Errorf("htmlToText = %q", got)
	}
	if got := fixMetaCharset(`<meta charset="iso-8859-1"><meta http-equiv=x content="text/html; charset=windows-1252"></head><p>charset=koi8</p>`); got !=
		`<meta charset="utf-8"><meta http-equiv=x content="text/html; charset=utf-8"></head><p>charset=koi8</p>` {
		t.Errorf("fixMetaCharset = %q", got)
	}
	if got := makePreview("  Hello,\r\n\r\n   world  and more", 12); got != "Hello, world" {
		t.Errorf("makePreview = %q", got)
	}
}
