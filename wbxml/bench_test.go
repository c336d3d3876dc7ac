package wbxml

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"
)

// syncResponse builds a Sync response with n Email adds, about 2 KB each.
func syncResponse(n int) *Element {
	cmds := E(AirSyncCommands)
	body := strings.Repeat("Hello Bob, the agenda for Monday is attached. ", 30)
	for i := range n {
		id := strconv.Itoa(i + 1)
		cmds.Add(E(AirSyncAdd,
			T(AirSyncServerId, "2:"+id),
			E(AirSyncApplicationData,
				T(EmailTo, `"Bob Chen" <bob@example.com>`),
				T(EmailFrom, `"Alice Martin" <alice@example.com>`),
				T(EmailSubject, "Agenda for Monday #"+id),
				T(EmailDateReceived, "2026-11-27T17:03:11.000Z"),
				T(EmailDisplayTo, "Bob Chen"),
				T(EmailImportance, "1"),
				T(EmailRead, "0"),
				E(AirSyncBaseBody, T(AirSyncBaseType, "1"), T(AirSyncBaseEstimatedDataSize, "1380"), T(AirSyncBaseData, body)),
				T(EmailMessageClass, "IPM.Note"),
				T(EmailInternetCPID, "65001"),
				E(EmailFlag),
				T(EmailContentClass, "urn:content-classes:message"),
				T(AirSyncBaseNativeBodyType, "1"),
				O(Email2ConversationId, []byte("0123456789abcdef")),
				O(Email2ConversationIndex, []byte("\x01\xda\x3f\x21\x7c")),
			)))
	}
	return E(AirSyncSync, E(AirSyncCollections, E(AirSyncCollection,
		T(AirSyncSyncKey, "{5e1f0a2b-77c3-4e0b-9b1a-3d2c4f6a8b90}2"),
		T(AirSyncCollectionId, "2"), T(AirSyncStatus, "1"), cmds)))
}

// syncDoc is the encoded syncResponse(500) the decoding benchmarks read;
// b's throughput is counted in its bytes.
func syncDoc(b *testing.B) []byte {
	b.Helper()
	doc, err := Marshal(syncResponse(500))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	return doc
}

func BenchmarkDecodeSync(b *testing.B) {
	doc := syncDoc(b)
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(doc), DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSyncTokens(b *testing.B) {
	doc := syncDoc(b)
	for b.Loop() {
		d := NewDecoder(bytes.NewReader(doc), DefaultLimits)
		for {
			if _, err := d.Token(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkEncodeSync(b *testing.B) {
	tree := syncResponse(500)
	doc, _ := Marshal(tree)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		enc := NewEncoder(io.Discard)
		if err := tree.Encode(enc); err != nil {
			b.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// sendMailSize is the MIME size of the large SendMail benchmarks.
const sendMailSize = 10 << 20

func encodeSendMail(w io.Writer, mime io.Reader, n int64) error {
	enc := NewEncoder(w)
	enc.Start(ComposeMailSendMail)
	enc.TextElement(ComposeMailClientId, "SendMail-1764263052731-4127")
	enc.Empty(ComposeMailSaveInSentItems)
	enc.Start(ComposeMailMime)
	enc.OpaqueFrom(mime, n)
	enc.End()
	enc.End()
	return enc.Close()
}

func BenchmarkEncodeSendMail10MB(b *testing.B) {
	mime := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/\r\n"), sendMailSize/66+1)[:sendMailSize]
	b.SetBytes(sendMailSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := encodeSendMail(io.Discard, bytes.NewReader(mime), sendMailSize); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSendMail10MB(b *testing.B) {
	mime := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/\r\n"), sendMailSize/66+1)[:sendMailSize]
	var doc bytes.Buffer
	if err := encodeSendMail(&doc, bytes.NewReader(mime), sendMailSize); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(doc.Len()))
	b.ReportAllocs()
	for b.Loop() {
		// io.MultiReader hides the size, as a network body does.
		d := NewDecoder(io.MultiReader(bytes.NewReader(doc.Bytes())), DefaultLimits)
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if tok.Kind == Opaque {
				if _, err := io.Copy(io.Discard, d.Opaque()); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
