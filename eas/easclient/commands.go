package easclient

import (
	"context"
	"strconv"
	"strings"

	"github.com/easgate/easgate/wbxml"
)

// PolicyTypeWBXML is the PolicyType of EAS 12.0 and later (MS-ASPROV
// 2.2.2.41).
const PolicyTypeWBXML = "MS-EAS-Provisioning-WBXML"

// DeviceInformation is what a device says about itself in
// Settings > DeviceInformation > Set (MS-ASCMD 2.2.3.47), sent in Settings
// or, from 14.1, inside the first Provision.
type DeviceInformation struct {
	Model, IMEI, FriendlyName, OS, OSLanguage, PhoneNumber, UserAgent, MobileOperator string
	EnableOutboundSMS                                                                 bool
}

// Element returns the settings:DeviceInformation element holding a Set of
// the non-empty fields.
func (d *DeviceInformation) Element() *wbxml.Element {
	set := wbxml.E(wbxml.SettingsSet)
	for _, f := range []struct {
		tag wbxml.Tag
		val string
	}{
		{wbxml.SettingsModel, d.Model}, {wbxml.SettingsIMEI, d.IMEI},
		{wbxml.SettingsFriendlyName, d.FriendlyName}, {wbxml.SettingsOS, d.OS},
		{wbxml.SettingsOSLanguage, d.OSLanguage}, {wbxml.SettingsPhoneNumber, d.PhoneNumber},
		{wbxml.SettingsUserAgent, d.UserAgent}, {wbxml.SettingsMobileOperator, d.MobileOperator},
	} {
		if f.val != "" {
			set.Add(wbxml.T(f.tag, f.val))
		}
	}
	if d.EnableOutboundSMS {
		set.Add(wbxml.T(wbxml.SettingsEnableOutboundSMS, "1"))
	}
	return wbxml.E(wbxml.SettingsDeviceInformation, set)
}

// ProvisionRequest returns the phase-1 Provision document (MS-ASPROV
// 3.1.5.1.1): a request for the WBXML policy, with the device's
// information first when info is not nil.
func ProvisionRequest(info *DeviceInformation) *wbxml.Element {
	var di *wbxml.Element
	if info != nil {
		di = info.Element()
	}
	return wbxml.E(wbxml.ProvisionProvision, di,
		wbxml.E(wbxml.ProvisionPolicies,
			wbxml.E(wbxml.ProvisionPolicy, wbxml.T(wbxml.ProvisionPolicyType, PolicyTypeWBXML))))
}

// ProvisionAck returns the phase-2 Provision document: the temporary key
// of phase 1 and the device's status (1 applied, 2 partially, 3 not
// applied, 4 third party).
func ProvisionAck(tempKey string, status int) *wbxml.Element {
	return wbxml.E(wbxml.ProvisionProvision,
		wbxml.E(wbxml.ProvisionPolicies,
			wbxml.E(wbxml.ProvisionPolicy,
				wbxml.T(wbxml.ProvisionPolicyType, PolicyTypeWBXML),
				wbxml.T(wbxml.ProvisionPolicyKey, tempKey),
				wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(status)))))
}

// WipeAck returns the Provision document a device sends after a remote
// wipe (MS-ASPROV 3.1.5.2): RemoteWipe > Status, or AccountOnlyRemoteWipe
// > Status for an account-only wipe; status 1 means done, 2 failed. Like
// Android, it sends no Policies.
func WipeAck(status int, accountOnly bool) *wbxml.Element {
	tag := wbxml.ProvisionRemoteWipe
	if accountOnly {
		tag = wbxml.ProvisionAccountOnlyRemoteWipe
	}
	return wbxml.E(wbxml.ProvisionProvision, wbxml.E(tag, wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(status))))
}

// ProvisionResult is what Provision saw.
type ProvisionResult struct {
	// Phase1 is the answer to the policy request; Phase2 the answer to the
	// acknowledgement, nil when phase 1 did not hand out a key or asked
	// for a wipe.
	Phase1, Phase2 *Response
	// TemporaryKey is the key of phase 1, PolicyKey the final key of
	// phase 2 (0 when none came).
	TemporaryKey, PolicyKey uint32
	// RemoteWipe and AccountOnlyRemoteWipe report a wipe directive in the
	// phase-1 answer. Provision then stops: acknowledging is the caller's
	// decision (WipeAck).
	RemoteWipe, AccountOnlyRemoteWipe bool
}

// policyKeyOf returns the Policies > Policy > PolicyKey of a Provision
// response and whether the policy's Status was 1.
func policyKeyOf(tree *wbxml.Element) (uint32, bool) {
	if tree == nil || tree.Tag != wbxml.ProvisionProvision {
		return 0, false
	}
	p := tree.Child(wbxml.ProvisionPolicies)
	if p != nil {
		p = p.Child(wbxml.ProvisionPolicy)
	}
	if p == nil {
		return 0, false
	}
	k, err := strconv.ParseUint(strings.TrimSpace(p.ChildText(wbxml.ProvisionPolicyKey)), 10, 32)
	return uint32(k), err == nil && strings.TrimSpace(p.ChildText(wbxml.ProvisionStatus)) == "1"
}

// Provision runs both phases of MS-ASPROV 3.1.5.1 with the given device
// information (nil sends none, as before 14.1) and acknowledges the policy
// with status 1. On success the final key is stored and sent from then
// on. A phase the server refuses ends the exchange and is reported in the
// result, not as an error.
func (c *Client) Provision(ctx context.Context, info *DeviceInformation) (*ProvisionResult, error) {
	res := &ProvisionResult{}
	r1, err := c.Do(ctx, "Provision", ProvisionRequest(info))
	res.Phase1 = r1
	if err != nil {
		return res, err
	}
	if r1.Tree != nil {
		res.RemoteWipe = r1.Tree.Has(wbxml.ProvisionRemoteWipe)
		res.AccountOnlyRemoteWipe = r1.Tree.Has(wbxml.ProvisionAccountOnlyRemoteWipe)
	}
	tmp, ok := policyKeyOf(r1.Tree)
	res.TemporaryKey = tmp
	if r1.HTTPStatus != 200 || r1.Status() != 1 || !ok || res.RemoteWipe || res.AccountOnlyRemoteWipe {
		return res, nil
	}
	r2, err := c.Do(ctx, "Provision", ProvisionAck(strconv.FormatUint(uint64(tmp), 10), 1))
	res.Phase2 = r2
	if err != nil {
		return res, err
	}
	if k, ok := policyKeyOf(r2.Tree); ok && r2.HTTPStatus == 200 && r2.Status() == 1 {
		res.PolicyKey = k
		c.SetPolicyKey(k)
	}
	return res, nil
}

// Folder is one folder of a FolderSync response.
type Folder struct {
	ServerID, ParentID, DisplayName string
	Type                            int
}

// FolderChanges is the content of a FolderSync response (MS-ASCMD
// 2.2.1.5).
type FolderChanges struct {
	Status  int
	SyncKey string
	Count   int
	Add     []Folder
	Update  []Folder
	Delete  []string // ServerIds
}

// ParseFolderSync reads a FolderSync response document; a document of
// another kind gives the zero value.
func ParseFolderSync(tree *wbxml.Element) FolderChanges {
	var fc FolderChanges
	if tree == nil || tree.Tag != wbxml.FolderHierarchyFolderSync {
		return fc
	}
	fc.Status, _ = strconv.Atoi(tree.ChildText(wbxml.FolderHierarchyStatus))
	fc.SyncKey = tree.ChildText(wbxml.FolderHierarchySyncKey)
	ch := tree.Child(wbxml.FolderHierarchyChanges)
	if ch == nil {
		return fc
	}
	fc.Count, _ = strconv.Atoi(ch.ChildText(wbxml.FolderHierarchyCount))
	folder := func(e *wbxml.Element) Folder {
		t, _ := strconv.Atoi(e.ChildText(wbxml.FolderHierarchyType))
		return Folder{
			ServerID:    e.ChildText(wbxml.FolderHierarchyServerId),
			ParentID:    e.ChildText(wbxml.FolderHierarchyParentId),
			DisplayName: e.ChildText(wbxml.FolderHierarchyDisplayName),
			Type:        t,
		}
	}
	for _, e := range ch.ChildrenOf(wbxml.FolderHierarchyAdd) {
		fc.Add = append(fc.Add, folder(e))
	}
	for _, e := range ch.ChildrenOf(wbxml.FolderHierarchyUpdate) {
		fc.Update = append(fc.Update, folder(e))
	}
	for _, e := range ch.ChildrenOf(wbxml.FolderHierarchyDelete) {
		fc.Delete = append(fc.Delete, e.ChildText(wbxml.FolderHierarchyServerId))
	}
	return fc
}

// FolderSyncRequest returns FolderSync > SyncKey (MS-ASCMD 2.2.1.5); "0"
// asks for the whole hierarchy.
func FolderSyncRequest(syncKey string) *wbxml.Element {
	return wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, syncKey))
}

// FolderSync sends FolderSync with syncKey and returns the response and
// its parsed content (the zero value when the answer is not a FolderSync
// document, e.g. a 449).
func (c *Client) FolderSync(ctx context.Context, syncKey string) (*Response, FolderChanges, error) {
	r, err := c.Do(ctx, "FolderSync", FolderSyncRequest(syncKey))
	if err != nil {
		return r, FolderChanges{}, err
	}
	return r, ParseFolderSync(r.Tree), nil
}

// GetUserInformation sends Settings > UserInformation > Get (MS-ASCMD
// 2.2.3.184), which answers with the user's SMTP addresses.
func (c *Client) GetUserInformation(ctx context.Context) (*Response, error) {
	return c.Do(ctx, "Settings", wbxml.E(wbxml.SettingsSettings,
		wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet))))
}
