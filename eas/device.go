package eas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/policy"
	"github.com/easgate/easgate/wbxml"
)

// lastSeenResolution is how stale a device's LastSeen may get before a
// request writes the record only to refresh it: a phone sends several
// requests a minute, and one store write per request would be waste.
const lastSeenResolution = time.Minute

// errUnchanged aborts an UpsertDevice whose record needs no write.
var errUnchanged = errors.New("device record unchanged")

// storeError wraps a device-store failure: the phone is told to retry
// later (503, or Status 111 from 14.0), the log gets the cause.
func storeError(op string, err error) error {
	return &StatusError{HTTP: http.StatusServiceUnavailable, Status: StatusServerErrorRetryLater,
		Cause: fmt.Errorf("device store: %s: %w", op, err)}
}

// admit registers the device (creating or refreshing its record: type,
// user agent, protocol version, last seen) and asks the policy gate whether
// the command may run (the digest checklist 3-5). A refusal is a
// *StatusError in the gate's terms: 449 or 403 up to 12.1; from 14.0
// Status 142/143/144/140 with HTTP 449, or Status 129 with HTTP 200.
func (s *Server) admit(ctx context.Context, req *Request) error {
	st := s.cfg.Devices
	if st == nil {
		return nil
	}
	now := s.cfg.Now()
	var seen *devices.Device
	dev, err := st.UpsertDevice(ctx, req.User, req.DeviceID, func(d *devices.Device) error {
		if d.Revision != 0 && d.Type == req.DeviceType && d.UserAgent == req.UserAgent &&
			d.ProtocolVersion == req.Version && now.Sub(d.LastSeen) < lastSeenResolution {
			c := *d
			seen = &c
			return errUnchanged
		}
		if d.Revision == 0 {
			d.FirstSeen = now
		}
		d.Type = req.DeviceType
		d.UserAgent = req.UserAgent
		d.ProtocolVersion = req.Version
		d.LastSeen = now
		return nil
	})
	switch {
	case errors.Is(err, errUnchanged):
		dev = seen
	case err != nil:
		return storeError("registering device", err)
	}
	req.Device = dev

	cfg := s.policy.Config()
	d := cfg.Gate(policy.Request{
		Command:    req.Command,
		Version:    req.Version,
		PolicyKey:  req.PolicyKey,
		User:       req.User,
		DeviceType: req.DeviceType,
		UserAgent:  req.UserAgent,
		Model:      dev.Info.Model,
		Device:     deviceState(dev, cfg.PolicyFor(req.User).Hash()),
	})
	if d.Outcome == policy.Allow {
		return nil
	}
	se := &StatusError{HTTP: d.HTTPStatus, Status: d.Status, BodyHTTP: d.HTTPStatus,
		Cause: fmt.Errorf("gate: %s: %s", d.Outcome, d.Reason)}
	if se.HTTP == http.StatusOK {
		// From 14.0 a refusal is HTTP 200 with Status 129; a command
		// without a top-level Status (MeetingResponse) cannot carry it
		// and must not look like success.
		se.HTTP = http.StatusForbidden
	}
	return se
}

// deviceState maps a device record onto what policy decides on. A record
// written before PendingPolicyHash existed has none: the pending key is then
// taken to be for the user's policy now.
func deviceState(d *devices.Device, currentHash string) policy.DeviceState {
	ds := policy.DeviceState{
		Keys: policy.Keys{
			Pending:     d.PendingPolicyKey,
			PendingHash: d.PendingPolicyHash,
			Current:     d.PolicyKey,
			CurrentHash: d.PolicyHash,
			Acked:       d.AckedPolicyKey,
		},
	}
	if ds.Keys.Pending != 0 && ds.Keys.PendingHash == "" {
		ds.Keys.PendingHash = currentHash
	}
	switch d.Access {
	case devices.AccessApproved:
		ds.Access = policy.ActionAllow
	case devices.AccessBlocked:
		ds.Access = policy.ActionBlock
	case devices.AccessQuarantined:
		ds.Access = policy.ActionQuarantine
	}
	switch d.Wipe {
	case devices.WipePending:
		ds.Wipe = policy.WipePending
	case devices.WipePendingAccountOnly:
		ds.Wipe, ds.WipeAccountOnly = policy.WipePending, true
	case devices.WipeAcknowledged:
		ds.Wipe = policy.WipeFailed
		if d.WipeStatus == 1 {
			ds.Wipe = policy.WipeDone
		}
	}
	return ds
}

// applyState writes what Provision changed (keys, wipe state) back onto a
// device record. before is the state Provision started from: the wipe
// state is written only if Provision changed it, so that an administrator's
// wipe request stored meanwhile is not lost.
func applyState(d *devices.Device, before, after policy.DeviceState, wipeStatus int, now time.Time) {
	d.PendingPolicyKey = after.Keys.Pending
	d.PendingPolicyHash = after.Keys.PendingHash
	d.PolicyKey = after.Keys.Current
	d.PolicyHash = after.Keys.CurrentHash
	d.AckedPolicyKey = after.Keys.Acked
	if after.Wipe == before.Wipe {
		return
	}
	switch after.Wipe {
	case policy.WipeDone, policy.WipeFailed:
		d.Wipe = devices.WipeAcknowledged
		d.WipeStatus = wipeStatus
		d.WipeAcknowledged = now
	case policy.WipeNone:
		d.Wipe = devices.WipeNone
	}
	// WipeSent has no counterpart in devices: the record stays pending,
	// which the gate treats the same way (the directive is repeated until
	// acknowledged).
}

// deviceInfo reads a DeviceInformation > Set element (MS-ASCMD 2.2.3.47).
func deviceInfo(set *wbxml.Element) devices.DeviceInfo {
	t := func(tag wbxml.Tag) string { return strings.TrimSpace(set.ChildText(tag)) }
	return devices.DeviceInfo{
		Model:             t(wbxml.SettingsModel),
		IMEI:              t(wbxml.SettingsIMEI),
		FriendlyName:      t(wbxml.SettingsFriendlyName),
		OS:                t(wbxml.SettingsOS),
		OSLanguage:        t(wbxml.SettingsOSLanguage),
		PhoneNumber:       t(wbxml.SettingsPhoneNumber),
		UserAgent:         t(wbxml.SettingsUserAgent),
		MobileOperator:    t(wbxml.SettingsMobileOperator),
		EnableOutboundSMS: t(wbxml.SettingsEnableOutboundSMS) == "1",
	}
}
