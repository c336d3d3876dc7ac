package eas

import (
	"bytes"
	"context"
	"testing"

	"github.com/easgate/easgate/wbxml"
	"github.com/easgate/easgate/wbxml/wbxmltest"
)

func TestSettings(t *testing.T) {
	e := newEnv(t, withStore(t), withPolicy(t, noProvisioning))
	set := wbxml.E(wbxml.SettingsSet,
		wbxml.T(wbxml.SettingsModel, "iPhone15,2"),
		wbxml.T(wbxml.SettingsIMEI, "35 123456 789012 3"),
		wbxml.T(wbxml.SettingsFriendlyName, "Jane's iPhone"),
		wbxml.T(wbxml.SettingsOS, "iOS 18.1 22B83"),
		wbxml.T(wbxml.SettingsOSLanguage, "de-DE"),
		wbxml.T(wbxml.SettingsPhoneNumber, "+49 30 1234567"),
		wbxml.T(wbxml.SettingsUserAgent, "Apple-iPhone15C2/2201.83"),
		wbxml.T(wbxml.SettingsMobileOperator, "Telekom.de"),
		wbxml.T(wbxml.SettingsEnableOutboundSMS, "1"),
	)
	req := wbxml.E(wbxml.SettingsSettings,
		wbxml.E(wbxml.SettingsDeviceInformation, set),
		wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet)),
		wbxml.E(wbxml.SettingsOof, wbxml.E(wbxml.SettingsGet, wbxml.T(wbxml.SettingsBodyType, "Text"))),
		wbxml.E(wbxml.SettingsRightsManagementInformation, wbxml.E(wbxml.SettingsGet)),
		wbxml.E(wbxml.SettingsDevicePassword, wbxml.E(wbxml.SettingsSet, wbxml.T(wbxml.SettingsPassword, "1234"))),
	)
	tests := []struct {
		version, user string
		userInfo      *wbxml.Element
	}{
		{"12.1", testUser, wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.SettingsEmailAddresses, wbxml.T(wbxml.SettingsSMTPAddress, testUser)))},
		{"14.0", "bob", wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.SettingsEmailAddresses, wbxml.T(wbxml.SettingsSMTPAddress, "bob@example.org")))},
		{"14.1", testUser, wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.SettingsAccounts, wbxml.E(wbxml.SettingsAccount,
			wbxml.E(wbxml.SettingsEmailAddresses, wbxml.T(wbxml.SettingsPrimarySmtpAddress, testUser)))))},
		{"16.1", "bob", wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.SettingsAccounts, wbxml.E(wbxml.SettingsAccount,
			wbxml.E(wbxml.SettingsEmailAddresses, wbxml.T(wbxml.SettingsPrimarySmtpAddress, "bob@example.org")))))},
	}
	for _, tt := range tests {
		t.Run(tt.version+"/"+tt.user, func(t *testing.T) {
			r := post("Settings", tt.version, mustMarshal(t, req))
			r.URL.RawQuery = "Cmd=Settings&DeviceId=ApplDEV1&DeviceType=iPhone"
			pw := testPassword
			if tt.user == "bob" {
				pw = "b\u00e4r"
			}
			r.Header.Set("Authorization", basic(tt.user, pw))
			w := e.do(r)
			if w.Code != 200 {
				t.Fatalf("code %d", w.Code)
			}
			body := w.Body.Bytes()
			wbxmltest.ValidateResponse(t, "SettingsResponse", body)
			want := wbxml.E(wbxml.SettingsSettings,
				wbxml.T(wbxml.SettingsStatus, "1"),
				wbxml.E(wbxml.SettingsDeviceInformation, wbxml.T(wbxml.SettingsStatus, "1")),
				wbxml.E(wbxml.SettingsUserInformation, wbxml.T(wbxml.SettingsStatus, "1"), tt.userInfo),
				wbxml.E(wbxml.SettingsOof, wbxml.T(wbxml.SettingsStatus, "1"), wbxml.E(wbxml.SettingsGet, wbxml.T(wbxml.SettingsOofState, "0"))),
				wbxml.E(wbxml.SettingsRightsManagementInformation, wbxml.T(wbxml.SettingsStatus, "1"),
					wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.RightsManagementRightsManagementTemplates))),
				wbxml.E(wbxml.SettingsDevicePassword, wbxml.T(wbxml.SettingsStatus, "7")),
			)
			if !bytes.Equal(body, mustMarshal(t, want)) {
				var got, exp bytes.Buffer
				wbxml.ToXML(&got, decode(t, w))
				wbxml.ToXML(&exp, want)
				t.Errorf("response\n%s\nwant\n%s", got.String(), exp.String())
			}
			d, err := e.store.GetDevice(context.Background(), tt.user, "appldev1")
			if err != nil {
				t.Fatal(err)
			}
			if d.Info.Model != "iPhone15,2" || d.Info.IMEI != "35 123456 789012 3" || d.Info.PhoneNumber != "+49 30 1234567" ||
				d.Info.MobileOperator != "Telekom.de" || !d.Info.EnableOutboundSMS || d.Info.OSLanguage != "de-DE" ||
				d.Type != "iPhone" || d.ProtocolVersion != tt.version {
				t.Errorf("stored device %+v", d)
			}
		})
	}
}

func TestSettingsErrors(t *testing.T) {
	e := newEnv(t, withStore(t), withPolicy(t, noProvisioning))
	tests := []struct {
		name string
		body *wbxml.Element
		want *wbxml.Element
	}{
		{"Oof Set", wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsOof, wbxml.E(wbxml.SettingsSet, wbxml.T(wbxml.SettingsOofState, "1")))),
			wbxml.E(wbxml.SettingsSettings, wbxml.T(wbxml.SettingsStatus, "1"), wbxml.E(wbxml.SettingsOof, wbxml.T(wbxml.SettingsStatus, "7")))},
		{"Oof without Get or Set", wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsOof)),
			wbxml.E(wbxml.SettingsSettings, wbxml.T(wbxml.SettingsStatus, "1"), wbxml.E(wbxml.SettingsOof, wbxml.T(wbxml.SettingsStatus, "2")))},
		{"DeviceInformation without Set", wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsDeviceInformation)),
			wbxml.E(wbxml.SettingsSettings, wbxml.T(wbxml.SettingsStatus, "1"), wbxml.E(wbxml.SettingsDeviceInformation, wbxml.T(wbxml.SettingsStatus, "2")))},
		{"UserInformation without Get", wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsUserInformation)),
			wbxml.E(wbxml.SettingsSettings, wbxml.T(wbxml.SettingsStatus, "1"), wbxml.E(wbxml.SettingsUserInformation, wbxml.T(wbxml.SettingsStatus, "2")))},
		{"foreign element", wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsModel)),
			wbxml.E(wbxml.SettingsSettings, wbxml.T(wbxml.SettingsStatus, "103"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(post("Settings", "14.1", mustMarshal(t, tt.body)))
			if w.Code != 200 {
				t.Fatalf("code %d", w.Code)
			}
			wbxmltest.ValidateResponse(t, "SettingsResponse", w.Body.Bytes())
			if !bytes.Equal(w.Body.Bytes(), mustMarshal(t, tt.want)) {
				var got bytes.Buffer
				wbxml.ToXML(&got, decode(t, w))
				t.Errorf("response %s", got.String())
			}
		})
	}
	if w := e.do(post("Settings", "14.1", nil)); w.Code != 200 ||
		statusOf(t, w, wbxml.SettingsSettings, wbxml.SettingsStatus) != "101" {
		t.Errorf("empty Settings: %d", w.Code)
	}
}
