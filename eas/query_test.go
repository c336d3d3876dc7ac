package eas

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"reflect"
	"testing"
)

// b64Query builds a base64 query as MS-ASHTTP 2.2.1.1.1.1 lays it out.
type b64Query struct {
	version, code byte
	locale        uint16
	deviceID      []byte
	policyKey     []byte // raw field: nil, or 4 bytes
	deviceType    string
	params        [][]byte // each: tag, then value
}

func (b b64Query) bytes() []byte {
	out := []byte{b.version, b.code}
	out = binary.LittleEndian.AppendUint16(out, b.locale)
	out = append(out, byte(len(b.deviceID)))
	out = append(out, b.deviceID...)
	out = append(out, byte(len(b.policyKey)))
	out = append(out, b.policyKey...)
	out = append(out, byte(len(b.deviceType)))
	out = append(out, b.deviceType...)
	for _, p := range b.params {
		out = append(out, p[0], byte(len(p)-1))
		out = append(out, p[1:]...)
	}
	return out
}

func (b b64Query) String() string { return base64.StdEncoding.EncodeToString(b.bytes()) }

func param(tag byte, v string) []byte { return append([]byte{tag}, v...) }

func key(k uint32) []byte { return binary.LittleEndian.AppendUint32(nil, k) }

func TestParseQuery(t *testing.T) {
	guid := []byte{0x8e, 0x22, 0x8d, 0xec, 0x38, 0x8f, 0xca, 0xf0, 0x9d, 0x1b, 0x50, 0x93, 0x64, 0xa8, 0x4c, 0xb8}
	wp := b64Query{version: 141, code: 17, locale: 0x0407, deviceID: guid, policyKey: key(3942919513),
		deviceType: "WP8", params: [][]byte{param(7, "\x03"), param(8, "Jane@Example.com")}}
	sendMail := b64Query{version: 121, code: 1, locale: 0x0409, deviceID: []byte("ApplDNQXYZ123"),
		deviceType: "iPhone", params: [][]byte{param(3, "7:12"), param(1, "5"), param(4, "RgAAAA"), param(6, "x"), param(0, "att.1")}}
	tests := []struct {
		name   string
		query  string
		header http.Header
		want   Query
		field  string // QueryError.Field, "" for success
	}{
		{
			name:   "plain iOS",
			query:  "Cmd=FolderSync&User=jane%40example.com&DeviceId=ApplF17ABC&DeviceType=iPhone",
			header: http.Header{"Ms-Asprotocolversion": {"16.1"}, "X-Ms-Policykey": {"1234567"}},
			want: Query{Command: "FolderSync", User: "jane@example.com", DeviceID: "applf17abc", DeviceType: "iPhone",
				Version: "16.1", PolicyKey: 1234567},
		},
		{
			name:   "plain AOSP SmartReply 12.1 with parameters",
			query:  "Cmd=SmartReply&User=jane&DeviceId=androidc1&DeviceType=Android&ItemId=5%3A3&CollectionId=5&SaveInSent=T",
			header: http.Header{"Ms-Asprotocolversion": {"12.1"}, "X-Ms-Policykey": {"0"}, "Ms-Asacceptmultipart": {"T"}},
			want: Query{Command: "SmartReply", User: "jane", DeviceID: "androidc1", DeviceType: "Android",
				Version: "12.1", Params: Params{ItemID: "5:3", CollectionID: "5"}, SaveInSent: true, AcceptMultiPart: true},
		},
		{
			name:   "plain with a policy key that is not a number",
			query:  "Cmd=Sync&User=u&DeviceId=d&DeviceType=t",
			header: http.Header{"Ms-Asprotocolversion": {"14.1"}, "X-Ms-Policykey": {"abc"}},
			want:   Query{Command: "Sync", User: "u", DeviceID: "d", DeviceType: "t", Version: "14.1"},
		},
		{
			name:   "plain without DeviceId",
			query:  "Cmd=Sync&User=u&DeviceType=t",
			header: http.Header{"Ms-Asprotocolversion": {"14.1"}},
			want:   Query{Command: "Sync", User: "u", DeviceType: "t", Version: "14.1"},
			field:  "DeviceId",
		},
		{
			name:   "plain without DeviceType",
			query:  "Cmd=Sync&User=u&DeviceId=d",
			header: http.Header{"Ms-Asprotocolversion": {"14.1"}},
			want:   Query{Command: "Sync", User: "u", DeviceID: "d", Version: "14.1"},
			field:  "DeviceType",
		},
		{
			name:   "plain DeviceId with a space",
			query:  "Cmd=Sync&User=u&DeviceId=a%20b&DeviceType=t",
			header: http.Header{"Ms-Asprotocolversion": {"14.1"}},
			want:   Query{Command: "Sync", User: "u", DeviceID: "a b", DeviceType: "t", Version: "14.1"},
			field:  "DeviceId",
		},
		{
			name:  "plain without version header",
			query: "Cmd=Sync&User=u&DeviceId=d&DeviceType=t",
			want:  Query{Command: "Sync", User: "u", DeviceID: "d", DeviceType: "t"},
			field: "MS-ASProtocolVersion",
		},
		{
			name:  "no query",
			field: "Cmd",
		},
		{
			name:  "plain without Cmd",
			query: "User=u&DeviceId=d&DeviceType=t",
			field: "Cmd",
		},
		{
			name:  "base64 binary DeviceId, options, user (Windows Phone style)",
			query: wp.String(),
			want: Query{Command: "Settings", User: "Jane@Example.com", DeviceID: "8e228dec388fcaf09d1b509364a84cb8",
				DeviceType: "WP8", Version: "14.1", PolicyKey: 3942919513, Locale: 0x0407,
				SaveInSent: true, AcceptMultiPart: true, Base64: true},
		},
		{
			name:   "base64 text DeviceId, no key: header key used; all parameters",
			query:  sendMail.String(),
			header: http.Header{"X-Ms-Policykey": {"77"}},
			want: Query{Command: "SendMail", DeviceID: "appldnqxyz123", DeviceType: "iPhone", Version: "12.1",
				PolicyKey: 77, Locale: 0x0409, Base64: true,
				Params: Params{ItemID: "7:12", CollectionID: "5", LongID: "RgAAAA", Occurrence: "x", AttachmentName: "att.1"}},
		},
		{
			name:  "base64 with '+' and padding, sent raw",
			query: "jBEJBAR0ZXN0AAN+fn4=",
			want:  Query{Command: "Settings", DeviceID: "test", DeviceType: "~~~", Version: "14.0", Locale: 0x0409, Base64: true},
		},
		{
			name:  "base64 without padding and percent-encoded",
			query: "jBEJBAR0ZXN0AAN%2Bfn4", // jBEJBAR0ZXN0AAN+fn4=
			want:  Query{Command: "Settings", DeviceID: "test", DeviceType: "~~~", Version: "14.0", Locale: 0x0409, Base64: true},
		},
		{
			name:  "base64 unknown command code",
			query: b64Query{version: 141, code: 99, deviceID: []byte("d"), deviceType: "t"}.String(),
			want:  Query{Version: "14.1", Base64: true},
			field: "Cmd",
		},
		{
			name:  "base64 policy key of 3 bytes",
			query: b64Query{version: 141, code: 9, deviceID: []byte("d"), policyKey: []byte{1, 2, 3}, deviceType: "t"}.String(),
			want:  Query{Command: "FolderSync", Version: "14.1", DeviceID: "d", Base64: true},
			field: "query",
		},
		{
			name:  "base64 truncated (tine20 #5242 prefix)",
			query: "jREHBBB5",
			want:  Query{Command: "Settings", Version: "14.1", Locale: 0x0407, Base64: true},
			field: "query",
		},
		{
			name: "base64 truncated parameter",
			query: base64.StdEncoding.EncodeToString(append(
				b64Query{version: 140, code: 0, deviceID: []byte("d"), deviceType: "t"}.bytes(), 3, 10, 'x')),
			want:  Query{Command: "Sync", Version: "14.0", DeviceID: "d", DeviceType: "t", Base64: true},
			field: "query",
		},
		{
			name:  "base64 empty DeviceId",
			query: b64Query{version: 161, code: 18, deviceType: "t"}.String(),
			want:  Query{Command: "Ping", Version: "16.1", DeviceType: "t", Base64: true},
			field: "DeviceId",
		},
		{
			name:  "neither form",
			query: "%%%",
			field: "Cmd",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			got, err := ParseQuery(tt.query, h)
			var qe *QueryError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("error: %v", err)
			case tt.field != "" && !errors.As(err, &qe):
				t.Fatalf("error %v, want a QueryError on %s", err, tt.field)
			case tt.field != "" && qe.Field != tt.field:
				t.Fatalf("error on %s (%v), want on %s", qe.Field, err, tt.field)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

// FuzzParseQuery checks that no query, base64 or not, makes the parser
// panic, and that a successful parse yields a command, a version and
// device identity.
func FuzzParseQuery(f *testing.F) {
	f.Add(b64Query{version: 141, code: 17, locale: 0x0407, deviceID: []byte{0, 1, 2}, policyKey: key(1), deviceType: "x",
		params: [][]byte{param(7, "\x03"), param(8, "u")}}.String())
	f.Add("jREHBBB5")
	f.Add("Cmd=Sync&User=u&DeviceId=d&DeviceType=t")
	f.Add("")
	f.Fuzz(func(t *testing.T, q string) {
		got, err := ParseQuery(q, http.Header{"Ms-Asprotocolversion": {"14.1"}})
		if got == nil {
			t.Fatal("nil Query")
		}
		if err == nil && (got.Command == "" || got.Version == "" || got.DeviceID == "" || got.DeviceType == "") {
			t.Fatalf("accepted %q without command, version or device: %+v", q, got)
		}
		var qe *QueryError
		if err != nil && !errors.As(err, &qe) {
			t.Fatalf("error %v is not a QueryError", err)
		}
	})
}
