package policy

// protoVersion is an EAS protocol version times ten (121 for "12.1"), the
// same encoding as the first byte of the base64 query (MS-ASHTTP 2.2.1.1.1.1).
type protoVersion uint8

const (
	v25  protoVersion = 25
	v120 protoVersion = 120
	v121 protoVersion = 121
	v140 protoVersion = 140
	v141 protoVersion = 141
	v160 protoVersion = 160
	v161 protoVersion = 161
)

// parseVersion maps an MS-ASProtocolVersion value onto protoVersion. An
// unknown or empty value gives v121: the gateway rejects versions it does
// not offer before policy is asked, so this only matters for callers that
// skip that check, and 12.1 behaviour (HTTP 449/403, no in-body statuses,
// the full settings list) is the one every client understands.
func parseVersion(s string) protoVersion {
	switch s {
	case "2.5":
		return v25
	case "12.0":
		return v120
	case "12.1":
		return v121
	case "14.0":
		return v140
	case "14.1":
		return v141
	case "16.0":
		return v160
	case "16.1":
		return v161
	}
	return v121
}

// hasBodyStatus reports whether the version carries provisioning and access
// conditions as a Status in the command's WBXML body (14.0 and later,
// MS-ASCMD 2.2.2); older versions only have HTTP status lines.
func (v protoVersion) hasBodyStatus() bool { return v >= v140 }
