package mailsync

import (
	"strings"
	"time"
)

// Budgets are how long building a Sync response may take per client
// family, below each family's own request timeout (digest §6 item 19:
// about 30 s for Gmail and AOSP, 90 s for Samsung, 4 minutes for iOS).
// When the budget is spent the engine stops adding items and sets
// MoreAvailable. Zero fields take the defaults.
type Budgets struct {
	Android time.Duration // Gmail, AOSP and other Android clients; default 25 s
	Samsung time.Duration // Samsung Email; default 80 s
	Other   time.Duration // iOS, Outlook and the rest; default 200 s
}

// For returns the budget for a client from its User-Agent and DeviceType.
func (b Budgets) For(userAgent, deviceType string) time.Duration {
	ua := strings.ToLower(userAgent + " " + deviceType)
	switch {
	case strings.Contains(ua, "samsung") || strings.Contains(ua, "sams") || strings.HasPrefix(ua, "sm-"):
		return orDefault(b.Samsung, 80*time.Second)
	case strings.Contains(ua, "android") || strings.Contains(ua, "gmail"):
		return orDefault(b.Android, 25*time.Second)
	}
	return orDefault(b.Other, 200*time.Second)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
