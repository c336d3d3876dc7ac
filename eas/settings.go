package eas

import (
	"context"
	"fmt"
	"strings"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/wbxml"
)

// Settings status values (MS-ASCMD 2.2.3.177.15), top-level and per
// section.
const (
	settingsSuccess        = "1"
	settingsProtocolError  = "2"
	settingsDeniedByPolicy = "7"
)

// settings is the Settings command (MS-ASCMD 2.2.1.18, the digest §3.11).
// Each section of the request gets a section of the answer, in request
// order:
//
//   - DeviceInformation > Set: stored on the device record, Status 1.
//   - UserInformation > Get: the user's address (see Server.address); up to
//     14.0 as Get > EmailAddresses > SMTPAddress, from 14.1 as
//     Get > Accounts > Account > EmailAddresses > PrimarySmtpAddress.
//   - Oof > Get: Status 1 with OofState 0. easgate has no out-of-office
//     store, so "off" is the truth; phones show the switch off.
//   - Oof > Set and DevicePassword > Set: Status 7 (denied by policy): the
//     gateway does not offer automatic replies nor keep device recovery
//     passwords, and saying so is better than acknowledging a setting that
//     is dropped.
//   - RightsManagementInformation > Get: Status 1 with an empty
//     RightsManagementTemplates list. The schema (MS-ASCMD 2.2.3.153)
//     requires the Get with its list whatever the status, and "no
//     templates" is the truth: phones then offer no IRM protection.
//
// A section without its Get or Set gets Status 2 (protocol error).
func (s *Server) settings(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
	if body == nil {
		return Response{}, errBadRequest(StatusInvalidContent, fmt.Errorf("Settings without a body"))
	}
	resp := wbxml.E(wbxml.SettingsSettings, wbxml.T(wbxml.SettingsStatus, settingsSuccess))
	section := func(tag wbxml.Tag, status string, children ...*wbxml.Element) {
		resp.Children = append(resp.Children, wbxml.E(tag, append([]*wbxml.Element{wbxml.T(wbxml.SettingsStatus, status)}, children...)...))
	}
	for _, c := range body.Children {
		switch c.Tag {
		case wbxml.SettingsDeviceInformation:
			set := c.Child(wbxml.SettingsSet)
			if set == nil {
				section(c.Tag, settingsProtocolError)
				continue
			}
			info := deviceInfo(set)
			d, err := s.cfg.Devices.UpsertDevice(ctx, req.User, req.DeviceID, func(d *devices.Device) error {
				d.Info = info
				return nil
			})
			if err != nil {
				return Response{}, storeError("storing DeviceInformation", err)
			}
			req.Device = d
			section(c.Tag, settingsSuccess)
		case wbxml.SettingsUserInformation:
			if c.Child(wbxml.SettingsGet) == nil {
				section(c.Tag, settingsProtocolError)
				continue
			}
			section(c.Tag, settingsSuccess, s.userInformation(req))
		case wbxml.SettingsOof:
			if c.Child(wbxml.SettingsGet) == nil {
				if c.Child(wbxml.SettingsSet) != nil {
					section(c.Tag, settingsDeniedByPolicy)
				} else {
					section(c.Tag, settingsProtocolError)
				}
				continue
			}
			section(c.Tag, settingsSuccess, wbxml.E(wbxml.SettingsGet, wbxml.T(wbxml.SettingsOofState, "0")))
		case wbxml.SettingsDevicePassword:
			section(c.Tag, settingsDeniedByPolicy)
		case wbxml.SettingsRightsManagementInformation:
			section(c.Tag, settingsSuccess, wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.RightsManagementRightsManagementTemplates)))
		default:
			return Response{}, errBadRequest(StatusInvalidXML, fmt.Errorf("Settings request has %v", c.Tag))
		}
	}
	return Response{Element: resp}, nil
}

// userInformation builds UserInformation > Get for the request's version.
func (s *Server) userInformation(req *Request) *wbxml.Element {
	addr := s.address(req.User)
	if req.VersionNumber() >= 141 {
		return wbxml.E(wbxml.SettingsGet,
			wbxml.E(wbxml.SettingsAccounts,
				wbxml.E(wbxml.SettingsAccount,
					wbxml.E(wbxml.SettingsEmailAddresses,
						wbxml.T(wbxml.SettingsPrimarySmtpAddress, addr)))))
	}
	return wbxml.E(wbxml.SettingsGet,
		wbxml.E(wbxml.SettingsEmailAddresses, wbxml.T(wbxml.SettingsSMTPAddress, addr)))
}

// address is the user's mail address: the login when it has an "@", else
// login@MailDomain when a mail domain is configured, else the login.
func (s *Server) address(login string) string {
	if strings.Contains(login, "@") || s.cfg.MailDomain == "" {
		return login
	}
	return login + "@" + s.cfg.MailDomain
}
