package policy

import (
	"strconv"

	"github.com/easgate/easgate/wbxml"
)

// settingTags maps each EASProvisionDoc child to its token on code page 14
// (MS-ASWBXML 2.1.2.1.15), and lists to the tag of their items.
var settingTags = map[string]struct{ tag, item wbxml.Tag }{
	"DevicePasswordEnabled":                    {tag: wbxml.ProvisionDevicePasswordEnabled},
	"AlphanumericDevicePasswordRequired":       {tag: wbxml.ProvisionAlphanumericDevicePasswordRequired},
	"PasswordRecoveryEnabled":                  {tag: wbxml.ProvisionPasswordRecoveryEnabled},
	"RequireStorageCardEncryption":             {tag: wbxml.ProvisionRequireStorageCardEncryption},
	"AttachmentsEnabled":                       {tag: wbxml.ProvisionAttachmentsEnabled},
	"MinDevicePasswordLength":                  {tag: wbxml.ProvisionMinDevicePasswordLength},
	"MaxInactivityTimeDeviceLock":              {tag: wbxml.ProvisionMaxInactivityTimeDeviceLock},
	"MaxDevicePasswordFailedAttempts":          {tag: wbxml.ProvisionMaxDevicePasswordFailedAttempts},
	"MaxAttachmentSize":                        {tag: wbxml.ProvisionMaxAttachmentSize},
	"AllowSimpleDevicePassword":                {tag: wbxml.ProvisionAllowSimpleDevicePassword},
	"DevicePasswordExpiration":                 {tag: wbxml.ProvisionDevicePasswordExpiration},
	"DevicePasswordHistory":                    {tag: wbxml.ProvisionDevicePasswordHistory},
	"AllowStorageCard":                         {tag: wbxml.ProvisionAllowStorageCard},
	"AllowCamera":                              {tag: wbxml.ProvisionAllowCamera},
	"RequireDeviceEncryption":                  {tag: wbxml.ProvisionRequireDeviceEncryption},
	"AllowUnsignedApplications":                {tag: wbxml.ProvisionAllowUnsignedApplications},
	"AllowUnsignedInstallationPackages":        {tag: wbxml.ProvisionAllowUnsignedInstallationPackages},
	"MinDevicePasswordComplexCharacters":       {tag: wbxml.ProvisionMinDevicePasswordComplexCharacters},
	"AllowWiFi":                                {tag: wbxml.ProvisionAllowWiFi},
	"AllowTextMessaging":                       {tag: wbxml.ProvisionAllowTextMessaging},
	"AllowPOPIMAPEmail":                        {tag: wbxml.ProvisionAllowPOPIMAPEmail},
	"AllowBluetooth":                           {tag: wbxml.ProvisionAllowBluetooth},
	"AllowIrDA":                                {tag: wbxml.ProvisionAllowIrDA},
	"RequireManualSyncWhenRoaming":             {tag: wbxml.ProvisionRequireManualSyncWhenRoaming},
	"AllowDesktopSync":                         {tag: wbxml.ProvisionAllowDesktopSync},
	"MaxCalendarAgeFilter":                     {tag: wbxml.ProvisionMaxCalendarAgeFilter},
	"AllowHTMLEmail":                           {tag: wbxml.ProvisionAllowHTMLEmail},
	"MaxEmailAgeFilter":                        {tag: wbxml.ProvisionMaxEmailAgeFilter},
	"MaxEmailBodyTruncationSize":               {tag: wbxml.ProvisionMaxEmailBodyTruncationSize},
	"MaxEmailHTMLBodyTruncationSize":           {tag: wbxml.ProvisionMaxEmailHTMLBodyTruncationSize},
	"RequireSignedSMIMEMessages":               {tag: wbxml.ProvisionRequireSignedSMIMEMessages},
	"RequireEncryptedSMIMEMessages":            {tag: wbxml.ProvisionRequireEncryptedSMIMEMessages},
	"RequireSignedSMIMEAlgorithm":              {tag: wbxml.ProvisionRequireSignedSMIMEAlgorithm},
	"RequireEncryptionSMIMEAlgorithm":          {tag: wbxml.ProvisionRequireEncryptionSMIMEAlgorithm},
	"AllowSMIMEEncryptionAlgorithmNegotiation": {tag: wbxml.ProvisionAllowSMIMEEncryptionAlgorithmNegotiation},
	"AllowSMIMESoftCerts":                      {tag: wbxml.ProvisionAllowSMIMESoftCerts},
	"AllowBrowser":                             {tag: wbxml.ProvisionAllowBrowser},
	"AllowConsumerEmail":                       {tag: wbxml.ProvisionAllowConsumerEmail},
	"AllowRemoteDesktop":                       {tag: wbxml.ProvisionAllowRemoteDesktop},
	"AllowInternetSharing":                     {tag: wbxml.ProvisionAllowInternetSharing},
	"UnapprovedInROMApplicationList":           {tag: wbxml.ProvisionUnapprovedInROMApplicationList, item: wbxml.ProvisionApplicationName},
	"ApprovedApplicationList":                  {tag: wbxml.ProvisionApprovedApplicationList, item: wbxml.ProvisionHash},
}

// ProvisionDoc builds the EASProvisionDoc element (MS-ASPROV 2.2.2.28) sent
// in a phase-1 Provision answer for a client speaking version (an
// MS-ASProtocolVersion value such as "14.1").
//
// Children come in schema order. DevicePasswordEnabled is always written
// (0 unless the policy enables it); every other setting only when the
// policy sets it, so the permissive default policy is the one-element
// document Gmail accepts. Settings the version does not know are left out:
// for 12.0 (and the unsupported 2.5) that is everything but the eleven
// password and attachment settings; 12.1 through 16.1 know them all.
func (p *Policy) ProvisionDoc(version string) *wbxml.Element {
	v := parseVersion(version)
	doc := wbxml.E(wbxml.ProvisionEASProvisionDoc)
	for _, spec := range settingSpecs {
		if max(v, v120) < spec.since {
			continue
		}
		f := p.Settings.field(spec)
		tags := settingTags[spec.name]
		switch {
		case !isSet(f) && spec.name == "DevicePasswordEnabled":
			doc.Children = append(doc.Children, wbxml.T(tags.tag, "0"))
		case !isSet(f):
		case spec.kind == kindList:
			list := wbxml.E(tags.tag)
			for _, item := range f.Interface().([]string) {
				list.Children = append(list.Children, wbxml.T(tags.item, item))
			}
			doc.Children = append(doc.Children, list)
		default:
			doc.Children = append(doc.Children, wbxml.T(tags.tag, text(spec, f)))
		}
	}
	return doc
}

// Response builds the Provision response element (MS-ASPROV 2.2.2.44) for
// a normal (HTTP 200) answer, in the order of the MS-ASPROV schema:
// settings:DeviceInformation, Status, Policies, RemoteWipe,
// AccountOnlyRemoteWipe. version picks the EASProvisionDoc children. It
// returns nil when the answer is an HTTP status without a body
// (HTTPStatus 403).
func (r *ProvisionResult) Response(version string) *wbxml.Element {
	if r.HTTPStatus != 0 {
		return nil
	}
	root := wbxml.E(wbxml.ProvisionProvision)
	if r.DeviceInformationStatus != 0 {
		root.Children = append(root.Children, wbxml.E(wbxml.SettingsDeviceInformation,
			wbxml.T(wbxml.SettingsStatus, strconv.Itoa(r.DeviceInformationStatus))))
	}
	root.Children = append(root.Children, wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(r.Status)))
	if r.PolicyStatus != 0 {
		pol := wbxml.E(wbxml.ProvisionPolicy,
			wbxml.T(wbxml.ProvisionPolicyType, r.PolicyType),
			wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(r.PolicyStatus)))
		if r.PolicyKey != 0 {
			pol.Children = append(pol.Children, wbxml.T(wbxml.ProvisionPolicyKey, strconv.FormatUint(uint64(r.PolicyKey), 10)))
		}
		if r.Policy != nil {
			pol.Children = append(pol.Children, wbxml.E(wbxml.ProvisionData, r.Policy.ProvisionDoc(version)))
		}
		root.Children = append(root.Children, wbxml.E(wbxml.ProvisionPolicies, pol))
	}
	if r.RemoteWipe {
		root.Children = append(root.Children, wbxml.E(wbxml.ProvisionRemoteWipe))
	}
	if r.AccountOnlyRemoteWipe {
		root.Children = append(root.Children, wbxml.E(wbxml.ProvisionAccountOnlyRemoteWipe))
	}
	return root
}
