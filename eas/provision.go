package eas

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/policy"
	"github.com/easgate/easgate/wbxml"
)

// provision is the Provision command (MS-ASPROV 3.2.5, the digest §3.1):
// phase 1 hands out a temporary key and the policy, phase 2 turns an
// acknowledged temporary key into the final one, and a pending remote wipe
// rides along and is acknowledged here. The decisions are policy's
// (policy.Config.Provision); this handler reads the request, stores what
// changed and the device's DeviceInformation (14.1+), and sends policy's
// answer.
func (s *Server) provision(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
	if body == nil {
		return Response{}, errBadRequest(StatusInvalidContent, fmt.Errorf("Provision without a body"))
	}
	pr, info, err := parseProvision(body)
	if err != nil {
		return Response{}, errBadRequest(StatusInvalidXML, err)
	}
	cfg := s.policy.Config()
	dev := req.Device
	before := deviceState(dev, cfg.PolicyFor(req.User).Hash())
	pr.Version = req.Version
	pr.User = req.User
	pr.DeviceType = req.DeviceType
	pr.UserAgent = req.UserAgent
	pr.Model = dev.Info.Model
	if info != nil && info.Model != "" {
		pr.Model = info.Model
	}
	pr.Device = before

	res := cfg.Provision(pr)
	// DeviceInformation is stored unless a wipe is under way (the device
	// is about to be erased; grommunio ignores it too) or the device is
	// refused.
	storeInfo := info != nil && !(before.Wipe == policy.WipePending || before.Wipe == policy.WipeSent) && res.HTTPStatus == 0 && res.Status == policy.ProvisionSuccess
	if res.Changed || storeInfo {
		now := s.cfg.Now()
		d, err := s.cfg.Devices.UpsertDevice(ctx, req.User, req.DeviceID, func(d *devices.Device) error {
			if res.Changed {
				applyState(d, before, res.Device, pr.WipeStatus, now)
				if pr.PolicyStatus != 0 {
					d.PolicyStatus = pr.PolicyStatus
				}
			}
			if storeInfo {
				d.Info = *info
			}
			return nil
		})
		if err != nil {
			return Response{}, storeError("storing provisioning state", err)
		}
		req.Device = d
	}
	if res.HTTPStatus != 0 && res.HTTPStatus != http.StatusOK {
		return Response{}, &StatusError{HTTP: res.HTTPStatus, Cause: fmt.Errorf("provision refused: %s", res.Reason)}
	}
	doc := res.Response(req.Version)
	if doc == nil {
		return Response{}, &StatusError{HTTP: http.StatusForbidden, Cause: fmt.Errorf("provision refused: %s", res.Reason)}
	}
	return Response{Element: doc}, nil
}

// parseProvision reads a Provision request (MS-ASPROV 2.2.2.44):
//
//	Provision
//	  settings:DeviceInformation > settings:Set > …   (14.1+)
//	  Policies > Policy > PolicyType, PolicyKey?, Status?
//	  RemoteWipe > Status | AccountOnlyRemoteWipe > Status
//
// A stray top-level Status (iOS 5.0.1 sends one before RemoteWipe) is
// ignored. It returns the DeviceInformation when there was one.
func parseProvision(body *wbxml.Element) (policy.ProvisionRequest, *devices.DeviceInfo, error) {
	var pr policy.ProvisionRequest
	var info *devices.DeviceInfo
	for _, c := range body.Children {
		switch c.Tag {
		case wbxml.SettingsDeviceInformation:
			pr.DeviceInformation = true
			if set := c.Child(wbxml.SettingsSet); set != nil {
				di := deviceInfo(set)
				info = &di
			}
		case wbxml.ProvisionPolicies:
			p := c.Child(wbxml.ProvisionPolicy)
			if p == nil {
				return pr, nil, fmt.Errorf("Policies without Policy")
			}
			pr.HasPolicy = true
			pr.PolicyType = strings.TrimSpace(p.ChildText(wbxml.ProvisionPolicyType))
			if k := p.Child(wbxml.ProvisionPolicyKey); k != nil {
				n, err := strconv.ParseUint(strings.TrimSpace(k.Text), 10, 32)
				if err != nil {
					return pr, nil, fmt.Errorf("PolicyKey %q: %w", k.Text, err)
				}
				pr.PolicyKey = uint32(n)
			}
			if st := p.Child(wbxml.ProvisionStatus); st != nil {
				n, err := strconv.Atoi(strings.TrimSpace(st.Text))
				if err != nil {
					return pr, nil, fmt.Errorf("Policy Status %q: %w", st.Text, err)
				}
				pr.PolicyStatus = n
			}
		case wbxml.ProvisionRemoteWipe, wbxml.ProvisionAccountOnlyRemoteWipe:
			st := c.Child(wbxml.ProvisionStatus)
			if st == nil {
				return pr, nil, fmt.Errorf("%v without Status", c.Tag)
			}
			n, err := strconv.Atoi(strings.TrimSpace(st.Text))
			if err != nil || (n != 1 && n != 2) {
				return pr, nil, fmt.Errorf("%v Status %q, want 1 or 2", c.Tag, st.Text)
			}
			pr.WipeStatus = n
		}
	}
	return pr, info, nil
}
