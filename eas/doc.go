// Package eas is easgate's HTTP front door for Exchange ActiveSync: the
// /Microsoft-Server-ActiveSync endpoint and Autodiscover.
//
// It exists so that every command handler sees one clean, authenticated,
// parsed request and answers with a value, while the protocol's HTTP rules
// live in one place: the two query forms of MS-ASHTTP 2.2.1.1.1 (plain and
// base64), version negotiation (OPTIONS), HTTP Basic authentication with a
// short-lived cache and a per-address slow-down for wrong passwords, the
// device registry and the provisioning gate (MS-ASPROV), and how errors look
// on the wire for each protocol version: an HTTP status line up to 12.1, the
// command's own top-level Status from 14.0 (MS-ASCMD 2.2.2).
//
// A command is a [Handler] registered under its Cmd= name with
// [Server.Handle]. It returns a [Response] (a WBXML element, a streamed
// body, or nothing) or an error; a [*StatusError] says what the phone is to
// see, any other error is a server error, and errors wrapping
// backend.ErrUnavailable become "retry later". The server writes the whole
// response once, after the handler has returned, so a phone never sees half
// an answer. The list of commands advertised in MS-ASProtocolCommands is
// derived from the registered handlers.
//
// Provision (provision.go) and Settings (settings.go) are implemented here;
// the other commands are registered by the packages that implement them,
// wired together by eas/gateway. docs/http.md describes the behaviour on the
// wire.
package eas
