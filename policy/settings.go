package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Settings holds the EASProvisionDoc settings of MS-ASPROV 2.2.2.28. Field
// names are the element names, and they are the keys of a policy table in
// the policy file. A nil field is "not set": the element is left out of the
// document and the client applies the spec default, which is always the
// permissive one (no password, everything allowed, no limits). So the zero
// Settings is the permissive policy that Gmail and iOS accept (see
// docs/policy.md, "Why permissive by default").
//
// Numbers are int64 whatever their wire type; Validate checks each against
// the range MS-ASPROV gives.
type Settings struct {
	// Password settings.
	DevicePasswordEnabled                    *bool    `toml:"DevicePasswordEnabled"`                    // 2.2.2.25
	AlphanumericDevicePasswordRequired       *bool    `toml:"AlphanumericDevicePasswordRequired"`       // 2.2.2.20
	PasswordRecoveryEnabled                  *bool    `toml:"PasswordRecoveryEnabled"`                  // 2.2.2.43
	RequireStorageCardEncryption             *bool    `toml:"RequireStorageCardEncryption"`             // 2.2.2.52
	AttachmentsEnabled                       *bool    `toml:"AttachmentsEnabled"`                       // 2.2.2.23
	MinDevicePasswordLength                  *int64   `toml:"MinDevicePasswordLength"`                  // 2.2.2.38, 1-16
	MaxInactivityTimeDeviceLock              *int64   `toml:"MaxInactivityTimeDeviceLock"`              // 2.2.2.36, seconds, >=9999 unlimited
	MaxDevicePasswordFailedAttempts          *int64   `toml:"MaxDevicePasswordFailedAttempts"`          // 2.2.2.32, 4-16
	MaxAttachmentSize                        *int64   `toml:"MaxAttachmentSize"`                        // 2.2.2.30, bytes
	AllowSimpleDevicePassword                *bool    `toml:"AllowSimpleDevicePassword"`                // 2.2.2.12
	DevicePasswordExpiration                 *int64   `toml:"DevicePasswordExpiration"`                 // 2.2.2.26, days, 0 never
	DevicePasswordHistory                    *int64   `toml:"DevicePasswordHistory"`                    // 2.2.2.27
	AllowStorageCard                         *bool    `toml:"AllowStorageCard"`                         // 2.2.2.15
	AllowCamera                              *bool    `toml:"AllowCamera"`                              // 2.2.2.4
	RequireDeviceEncryption                  *bool    `toml:"RequireDeviceEncryption"`                  // 2.2.2.46
	AllowUnsignedApplications                *bool    `toml:"AllowUnsignedApplications"`                // 2.2.2.17
	AllowUnsignedInstallationPackages        *bool    `toml:"AllowUnsignedInstallationPackages"`        // 2.2.2.18
	MinDevicePasswordComplexCharacters       *int64   `toml:"MinDevicePasswordComplexCharacters"`       // 2.2.2.37, 1-4
	AllowWiFi                                *bool    `toml:"AllowWiFi"`                                // 2.2.2.19
	AllowTextMessaging                       *bool    `toml:"AllowTextMessaging"`                       // 2.2.2.16
	AllowPOPIMAPEmail                        *bool    `toml:"AllowPOPIMAPEmail"`                        // 2.2.2.10
	AllowBluetooth                           *int64   `toml:"AllowBluetooth"`                           // 2.2.2.2, 0 off, 1 hands-free, 2 on
	AllowIrDA                                *bool    `toml:"AllowIrDA"`                                // 2.2.2.9
	RequireManualSyncWhenRoaming             *bool    `toml:"RequireManualSyncWhenRoaming"`             // 2.2.2.50
	AllowDesktopSync                         *bool    `toml:"AllowDesktopSync"`                         // 2.2.2.6
	MaxCalendarAgeFilter                     *int64   `toml:"MaxCalendarAgeFilter"`                     // 2.2.2.31, 0 4 5 6 7
	AllowHTMLEmail                           *bool    `toml:"AllowHTMLEmail"`                           // 2.2.2.7
	MaxEmailAgeFilter                        *int64   `toml:"MaxEmailAgeFilter"`                        // 2.2.2.33, 0-5
	MaxEmailBodyTruncationSize               *int64   `toml:"MaxEmailBodyTruncationSize"`               // 2.2.2.34, KB, -1 unlimited
	MaxEmailHTMLBodyTruncationSize           *int64   `toml:"MaxEmailHTMLBodyTruncationSize"`           // 2.2.2.35, KB, -1 unlimited
	RequireSignedSMIMEMessages               *bool    `toml:"RequireSignedSMIMEMessages"`               // 2.2.2.51
	RequireEncryptedSMIMEMessages            *bool    `toml:"RequireEncryptedSMIMEMessages"`            // 2.2.2.47
	RequireSignedSMIMEAlgorithm              *int64   `toml:"RequireSignedSMIMEAlgorithm"`              // 2.2.2.49, 0 SHA1, 1 MD5
	RequireEncryptionSMIMEAlgorithm          *int64   `toml:"RequireEncryptionSMIMEAlgorithm"`          // 2.2.2.48, 0-4
	AllowSMIMEEncryptionAlgorithmNegotiation *int64   `toml:"AllowSMIMEEncryptionAlgorithmNegotiation"` // 2.2.2.13, 0-2
	AllowSMIMESoftCerts                      *bool    `toml:"AllowSMIMESoftCerts"`                      // 2.2.2.14
	AllowBrowser                             *bool    `toml:"AllowBrowser"`                             // 2.2.2.3
	AllowConsumerEmail                       *bool    `toml:"AllowConsumerEmail"`                       // 2.2.2.5
	AllowRemoteDesktop                       *bool    `toml:"AllowRemoteDesktop"`                       // 2.2.2.11
	AllowInternetSharing                     *bool    `toml:"AllowInternetSharing"`                     // 2.2.2.8
	UnapprovedInROMApplicationList           []string `toml:"UnapprovedInROMApplicationList"`           // 2.2.2.55, application names
	ApprovedApplicationList                  []string `toml:"ApprovedApplicationList"`                  // 2.2.2.22, SHA-1 hashes
}

// valueKind is how a setting is written and checked.
type valueKind uint8

const (
	kindBool valueKind = iota
	kindInt
	kindList
)

// settingSpec describes one EASProvisionDoc child: its element name (which
// is also the Settings field and the TOML key), the first protocol version
// that knows it, and the values MS-ASPROV allows.
type settingSpec struct {
	name     string
	since    protoVersion // first version whose EASProvisionDoc has it
	kind     valueKind
	min, max int64   // inclusive range for kindInt
	enum     []int64 // when set, the only values allowed (kindInt)
	note     string  // what the range means, for error messages
}

// settingSpecs lists the EASProvisionDoc children in the order of the
// MS-ASPROV schema (Provision.xsd), which is the order they are written in.
// The protocol-version tables of MS-ASPROV 2.2.2.x give "since": the eleven
// password and attachment settings exist from 12.0, everything else from 12.1.
var settingSpecs = []settingSpec{
	{name: "DevicePasswordEnabled", since: v120, kind: kindBool},
	{name: "AlphanumericDevicePasswordRequired", since: v120, kind: kindBool},
	{name: "PasswordRecoveryEnabled", since: v120, kind: kindBool},
	{name: "RequireStorageCardEncryption", since: v121, kind: kindBool},
	{name: "AttachmentsEnabled", since: v120, kind: kindBool},
	{name: "MinDevicePasswordLength", since: v120, kind: kindInt, min: 1, max: 16, note: "characters, 1-16"},
	{name: "MaxInactivityTimeDeviceLock", since: v120, kind: kindInt, min: 1, max: 9999, note: "seconds, 1-9999; 9999 means unlimited"},
	{name: "MaxDevicePasswordFailedAttempts", since: v120, kind: kindInt, min: 4, max: 16, note: "attempts, 4-16"},
	{name: "MaxAttachmentSize", since: v120, kind: kindInt, min: 0, max: 1<<32 - 1, note: "bytes, 0-4294967295"},
	{name: "AllowSimpleDevicePassword", since: v120, kind: kindBool},
	{name: "DevicePasswordExpiration", since: v120, kind: kindInt, min: 0, max: 1<<32 - 1, note: "days, 0 means never"},
	{name: "DevicePasswordHistory", since: v120, kind: kindInt, min: 0, max: 1<<32 - 1, note: "passwords remembered, 0 or more"},
	{name: "AllowStorageCard", since: v121, kind: kindBool},
	{name: "AllowCamera", since: v121, kind: kindBool},
	{name: "RequireDeviceEncryption", since: v121, kind: kindBool},
	{name: "AllowUnsignedApplications", since: v121, kind: kindBool},
	{name: "AllowUnsignedInstallationPackages", since: v121, kind: kindBool},
	{name: "MinDevicePasswordComplexCharacters", since: v121, kind: kindInt, min: 1, max: 4, note: "character groups, 1-4"},
	{name: "AllowWiFi", since: v121, kind: kindBool},
	{name: "AllowTextMessaging", since: v121, kind: kindBool},
	{name: "AllowPOPIMAPEmail", since: v121, kind: kindBool},
	{name: "AllowBluetooth", since: v121, kind: kindInt, min: 0, max: 2, note: "0 disabled, 1 hands-free only, 2 allowed"},
	{name: "AllowIrDA", since: v121, kind: kindBool},
	{name: "RequireManualSyncWhenRoaming", since: v121, kind: kindBool},
	{name: "AllowDesktopSync", since: v121, kind: kindBool},
	{name: "MaxCalendarAgeFilter", since: v121, kind: kindInt, enum: []int64{0, 4, 5, 6, 7}, note: "0 all, 4 two weeks, 5 one month, 6 three months, 7 six months"},
	{name: "AllowHTMLEmail", since: v121, kind: kindBool},
	{name: "MaxEmailAgeFilter", since: v121, kind: kindInt, min: 0, max: 5, note: "0 all, 1 one day, 2 three days, 3 one week, 4 two weeks, 5 one month"},
	{name: "MaxEmailBodyTruncationSize", since: v121, kind: kindInt, min: -1, max: 1<<31 - 1, note: "kilobytes, -1 means no truncation"},
	{name: "MaxEmailHTMLBodyTruncationSize", since: v121, kind: kindInt, min: -1, max: 1<<31 - 1, note: "kilobytes, -1 means no truncation"},
	{name: "RequireSignedSMIMEMessages", since: v121, kind: kindBool},
	{name: "RequireEncryptedSMIMEMessages", since: v121, kind: kindBool},
	{name: "RequireSignedSMIMEAlgorithm", since: v121, kind: kindInt, min: 0, max: 1, note: "0 SHA1, 1 MD5"},
	{name: "RequireEncryptionSMIMEAlgorithm", since: v121, kind: kindInt, min: 0, max: 4, note: "0 TripleDES, 1 DES, 2 RC2-128, 3 RC2-64, 4 RC2-40"},
	{name: "AllowSMIMEEncryptionAlgorithmNegotiation", since: v121, kind: kindInt, min: 0, max: 2, note: "0 no negotiation, 1 strong algorithms only, 2 any algorithm"},
	{name: "AllowSMIMESoftCerts", since: v121, kind: kindBool},
	{name: "AllowBrowser", since: v121, kind: kindBool},
	{name: "AllowConsumerEmail", since: v121, kind: kindBool},
	{name: "AllowRemoteDesktop", since: v121, kind: kindBool},
	{name: "AllowInternetSharing", since: v121, kind: kindBool},
	{name: "UnapprovedInROMApplicationList", since: v121, kind: kindList, note: "application names"},
	{name: "ApprovedApplicationList", since: v121, kind: kindList, note: "SHA-1 hashes of applications"},
}

// settingField returns the Settings field named by spec.
func (s *Settings) field(spec settingSpec) reflect.Value {
	return reflect.ValueOf(s).Elem().FieldByName(spec.name)
}

// isSet reports whether the setting has a value (a non-nil pointer, or a
// list that was given in the file, even an empty one).
func isSet(f reflect.Value) bool { return !f.IsNil() }

// settingError is a bad value for one setting; config.go adds file and line.
type settingError struct {
	setting string
	msg     string
}

func (e *settingError) Error() string { return e.setting + ": " + e.msg }

// Validate checks every set value against MS-ASPROV. It returns a
// *settingError naming the first bad setting, in schema order.
func (s *Settings) Validate() error {
	for _, spec := range settingSpecs {
		f := s.field(spec)
		if !isSet(f) {
			continue
		}
		switch spec.kind {
		case kindInt:
			v := f.Elem().Int()
			if spec.enum != nil {
				ok := false
				for _, e := range spec.enum {
					ok = ok || v == e
				}
				if !ok {
					return &settingError{spec.name, fmt.Sprintf("%d is not allowed (%s)", v, spec.note)}
				}
			} else if v < spec.min || v > spec.max {
				return &settingError{spec.name, fmt.Sprintf("%d is out of range (%s)", v, spec.note)}
			}
		case kindList:
			for i, item := range f.Interface().([]string) {
				if strings.TrimSpace(item) == "" {
					return &settingError{spec.name, fmt.Sprintf("item %d is empty", i+1)}
				}
			}
		}
	}
	return nil
}

// text is the element text a set scalar setting is written with: MS-ASDTYPE
// booleans are 0 and 1, integers are decimal.
func text(spec settingSpec, f reflect.Value) string {
	if spec.kind == kindBool {
		if f.Elem().Bool() {
			return "1"
		}
		return "0"
	}
	return strconv.FormatInt(f.Elem().Int(), 10)
}

// hash is a short, stable fingerprint of the settings: it changes whenever
// a value that could reach a phone changes, and only then. Field order is
// the schema order, so it does not depend on the order of the file.
func (s *Settings) hash() string {
	h := sha256.New()
	for _, spec := range settingSpecs {
		f := s.field(spec)
		if !isSet(f) {
			continue
		}
		if spec.kind == kindList {
			fmt.Fprintf(h, "%s=%q\n", spec.name, f.Interface().([]string))
			continue
		}
		fmt.Fprintf(h, "%s=%s\n", spec.name, text(spec, f))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
