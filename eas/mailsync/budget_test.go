package mailsync

import (
	"testing"
	"time"
)

func TestBudgets(t *testing.T) {
	tests := []struct {
		ua, typ string
		want    time.Duration
	}{
		{"Android-Mail/2024.05", "Android", 25 * time.Second},
		{"Android/14-EAS-2.0", "Android", 25 * time.Second},
		{"SAMSUNG-SM-G991B/101.0", "SAMSUNGSMG991B", 80 * time.Second},
		{"Apple-iPhone11C8/2007.75", "iPhone", 200 * time.Second},
		{"Outlook/16.0", "WindowsOutlook", 200 * time.Second},
	}
	for _, tt := range tests {
		if got := (Budgets{}).For(tt.ua, tt.typ); got != tt.want {
			t.Errorf("%s/%s: %v, want %v", tt.ua, tt.typ, got, tt.want)
		}
	}
	if got := (Budgets{Other: time.Minute}).For("Apple-iPad", "iPad"); got != time.Minute {
		t.Errorf("configured: %v", got)
	}
}
