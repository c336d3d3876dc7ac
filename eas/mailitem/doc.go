// Package mailitem turns an IMAP message into the ApplicationData of an
// EAS Email item (MS-ASEMAIL, MS-ASAIRS): the element tree a Sync Add,
// a Sync Fetch or an ItemOperations Fetch carries to the phone.
//
// The converter pulls from a [Source] rather than taking a whole message,
// so that the sync engine fetches from IMAP only what the item needs: the
// BODYSTRUCTURE and header first, then the one or two text sections the
// body is made of — partially (BODY.PEEK[1.2]<0.N>) when the phone asked
// for a truncated body — and the full message only for a MIME (Type 4)
// body. [FromBytes] is the in-memory Source over a raw RFC 5322 message.
//
// Conversion never fails because of what the message contains: malformed
// MIME, unknown charsets, 8-bit or huge headers and absurd nesting all give
// a valid item, with what was wrong reported in [Item.Warnings]. Only a
// Source error (IMAP gone, context cancelled) is returned as an error.
package mailitem
