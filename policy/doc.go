// Package policy decides what a phone may do: which security settings it is
// sent in Provision (MS-ASPROV), whether its policy key is current, whether it
// is allowed, blocked or quarantined, and whether a remote wipe is due.
//
// The package is pure logic over a TOML policy file. It knows nothing about
// HTTP or the device store: the eas front door maps its request and the
// stored device record onto the small types here ([Request], [DeviceState],
// [ProvisionRequest]), asks for a [Decision] or a [ProvisionResult], and
// stores what comes back. Keeping it apart lets every row of the decision
// table be tested without a server.
//
// The file format is described in docs/policy.md; docs/policy.example.toml is
// a complete, loadable example.
package policy
