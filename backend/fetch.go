package backend

// ContentRequest is one shape of read for Session.Contents: the same
// parts of every message in UIDs. Sync Add (MS-ASCMD 2.2.3.7.2) sends a
// window of up to 512 items, and each item needs only some of its
// message: the whole of a small one, or the header and the first
// TruncationSize-worth of one body part (MS-ASAIRS 2.2.2.40.1) of a large
// one. Messages that need the same parts share a request, so a window
// costs one round trip per distinct shape instead of one per message.
type ContentRequest struct {
	// UIDs are the messages to read. Missing ones are left out.
	UIDs UIDSet
	// Summary reads each message's Summary as Session.Summaries does,
	// but for the Envelope, which is left empty: a caller that reads the
	// header (as the item builder does) has no use for it, and parsing it
	// is a good part of the cost of a summary. In the same round trip as
	// the contents, so a window of Adds whose sizes are not known yet
	// reads summaries and small messages whole at once.
	Summary bool
	// NoStructure leaves the MIME structure (BODYSTRUCTURE) out of the
	// Summary: Summary.Structure is nil. For a caller that reads small
	// messages whole and finds their structure in them, parsing
	// BODYSTRUCTURE is wasted work (on IMAP, about a tenth of the CPU
	// time of reading a Sync window).
	NoStructure bool
	// Whole reads the whole RFC 5322 message (IMAP BODY.PEEK[]), at most
	// WholeLimit bytes of it when WholeLimit > 0 (BODY.PEEK[]<0.n>): a
	// MIME body (BodyPreference Type 4) cut at its TruncationSize.
	Whole      bool
	WholeLimit int64
	// Header reads the top-level header block (BODY.PEEK[HEADER]), empty
	// line included.
	Header bool
	// Sections are the body parts to read.
	Sections []SectionRequest
}

// SectionRequest is one part to read in a ContentRequest.
type SectionRequest struct {
	// Part is an IMAP section as Session.Section takes it: "1.2", "TEXT",
	// "1.2.MIME", "HEADER". The whole message ("") is ContentRequest.Whole.
	Part string
	// Limit is the most bytes to read from the start of the part (IMAP
	// <0.limit>); <= 0 reads it all. A part shorter than Limit comes
	// whole, so asking for one byte more than needed tells whether there
	// is more.
	Limit int64
}

// Contents is what Session.Contents read of one message.
type Contents struct {
	UID UID
	// Request is the index of the ContentRequest the message was read
	// for.
	Request int
	// Summary is the message's summary (without Envelope) when the
	// request asked for it, else nil.
	Summary *Summary
	// Whole is the message (or its first WholeLimit bytes) when the
	// request asked for it, else nil. It may come from Bytes: a caller
	// done with it may hand it back with ReleaseBytes.
	Whole []byte
	// Header is the header block when the request asked for it, else nil.
	Header []byte
	// Sections hold the parts in the order of the request's Sections,
	// as stored (still transfer-encoded). A part the message does not
	// have is empty, as IMAP returns it.
	Sections [][]byte
}
