package mailsync

import (
	"reflect"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
)

// TestStateEncoding: a state round-trips through its stored form.
func TestStateEncoding(t *testing.T) {
	snap := &backend.FolderState{UIDValidity: 7, UIDNext: 100, Messages: 50, HighestModSeq: 9,
		Window: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), UIDs: backend.NewUIDSet(1, 2, 3, 5, 9, 10),
		Flags: map[string]backend.UIDSet{`\Seen`: backend.NewUIDSet(1, 3, 9)}, Pending: backend.NewUIDSet(4)}
	st := &state{Snap: snap, Filter: 3, Parent: 42, DueChanged: backend.NewUIDSet(3), DueAdded: backend.NewUIDSet(2, 5), Scanned: 1795000000, Batch: batch{Added: backend.NewUIDSet(9, 10), More: true,
		Results: []result{{Kind: CmdDelete, ID: "1:4", Status: 1}}}}
	data, err := encodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, st)
	}
	if ft, err := FilterType(data); err != nil || ft != st.Filter {
		t.Errorf("FilterType = %d, %v; want %d", ft, err, st.Filter)
	}
	if _, err := FilterType([]byte("{")); err == nil {
		t.Error("FilterType of a corrupt state succeeded")
	}
	if _, err := decodeState([]byte("{")); err == nil {
		t.Error("corrupt state accepted")
	}
}

// TestReportState: the operator's report of a state counts what the phone
// has and is owed, and lists the messages that failed.
func TestReportState(t *testing.T) {
	st := &state{Snap: &backend.FolderState{UIDs: backend.NewUIDSet(1, 2, 3, 4, 5, 6, 7)}, Filter: 2,
		DueChanged: backend.NewUIDSet(2), DueDeleted: backend.NewUIDSet(8, 9), DueAdded: backend.NewUIDSet(5, 6, 7),
		Failed: backend.NewUIDSet(5, 7), Retries: 1}
	data, err := encodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReportState(data)
	if err != nil {
		t.Fatal(err)
	}
	want := Report{FilterType: 2, Tracked: 4, DueAdds: 3, DueChanges: 1, DueDeletes: 2, Failed: []uint32{5, 7}, Retries: 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report %+v, want %+v", got, want)
	}
	if _, err := ReportState([]byte("{")); err == nil {
		t.Error("corrupt state reported")
	}
}
