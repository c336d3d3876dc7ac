// Package wbxml is the WBXML 1.3 codec of Exchange ActiveSync (MS-ASWBXML).
//
// Phones send every EAS command body as WBXML: a binary XML where each tag
// is one byte looked up in one of 26 code pages. This package turns those
// bytes into tokens or a tree and back, and gives a readable XML text form
// for logs, tests and the "easgate wbxml" tool.
//
// It has four layers, each usable on its own:
//
//   - the code page table ([Tag], [TagByName] and one constant per tag such as
//     [AirSyncSyncKey]), generated from the project's token list;
//   - a streaming [Decoder] that reads one token at a time from an
//     [io.Reader], enforces [Limits] and never trusts a declared length;
//   - a streaming [Encoder] that writes tokens to an [io.Writer], switching
//     code pages only when needed, with [Encoder.OpaqueFrom] for large bodies;
//   - a tree ([Element], [Parse], [Marshal]) and its XML form ([ToXML],
//     [FromXML]) for handlers and tests.
//
// EAS uses a small subset of WBXML 1.3 (MS-ASWBXML 2.1.2): UTF-8, no string
// table, no attributes, only the global tokens SWITCH_PAGE, END, STR_I and
// OPAQUE. Everything else is rejected with a typed error; no input makes the
// decoder panic.
package wbxml
