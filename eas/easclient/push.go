package easclient

import (
	"context"
	"strconv"
	"strings"

	"github.com/easgate/easgate/wbxml"
)

// Folder types of FolderSync (MS-ASCMD 2.2.3.186.3) a client looks for.
const (
	FolderTypeInbox = 2
)

// FolderOfType returns the first folder of the given type in fc.Add, and
// whether there is one.
func (fc FolderChanges) FolderOfType(typ int) (Folder, bool) {
	for _, f := range fc.Add {
		if f.Type == typ {
			return f, true
		}
	}
	return Folder{}, false
}

// SyncOptions are the per-collection options of a Sync request a client
// usually sends for email.
type SyncOptions struct {
	// WindowSize is the most items the server may send (0: leave it out,
	// the server's default of 100 applies).
	WindowSize int
	// FilterType is airsync:FilterType ("" leaves it out; "0" is all
	// mail).
	FilterType string
	// BodyType and TruncationSize make one airsyncbase:BodyPreference
	// (BodyType 0 leaves it out).
	BodyType, TruncationSize int
}

// SyncRequest returns a Sync document for one collection (MS-ASCMD
// 2.2.1.21): the key ("0" to start), the CollectionId, GetChanges unless
// the key is "0", and the options.
func SyncRequest(syncKey, collectionID string, o SyncOptions) *wbxml.Element {
	c := wbxml.E(wbxml.AirSyncCollection,
		wbxml.T(wbxml.AirSyncSyncKey, syncKey),
		wbxml.T(wbxml.AirSyncCollectionId, collectionID))
	if syncKey != "0" {
		c.Add(wbxml.E(wbxml.AirSyncGetChanges))
	}
	if o.WindowSize > 0 {
		c.Add(wbxml.T(wbxml.AirSyncWindowSize, strconv.Itoa(o.WindowSize)))
	}
	if o.FilterType != "" || o.BodyType != 0 {
		opts := wbxml.E(wbxml.AirSyncOptions)
		if o.FilterType != "" {
			opts.Add(wbxml.T(wbxml.AirSyncFilterType, o.FilterType))
		}
		if o.BodyType != 0 {
			bp := wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, strconv.Itoa(o.BodyType)))
			if o.TruncationSize > 0 {
				bp.Add(wbxml.T(wbxml.AirSyncBaseTruncationSize, strconv.Itoa(o.TruncationSize)))
			}
			opts.Add(bp)
		}
		c.Add(opts)
	}
	return wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, c))
}

// SyncCollection is one Collection of a Sync response.
type SyncCollection struct {
	CollectionID, SyncKey string
	Status                int
	MoreAvailable         bool
	// Added, Changed and Deleted are the ServerIds of the server's
	// Commands.
	Added, Changed, Deleted []string
}

// SyncResult is the content of a Sync response. An empty response body
// (MS-ASCMD 2.2.1.21: nothing changed, the key stays) gives the zero value
// with Empty set.
type SyncResult struct {
	Empty bool
	// Status is the top-level Status (0 when absent, as it is on
	// success).
	Status      int
	Collections []SyncCollection
}

// Collection returns the collection with the id, and whether there is one.
func (s SyncResult) Collection(id string) (SyncCollection, bool) {
	for _, c := range s.Collections {
		if c.CollectionID == id {
			return c, true
		}
	}
	return SyncCollection{}, false
}

// ParseSync reads a Sync response document; nil gives an Empty result.
func ParseSync(tree *wbxml.Element) SyncResult {
	if tree == nil {
		return SyncResult{Empty: true}
	}
	var res SyncResult
	if tree.Tag != wbxml.AirSyncSync {
		return res
	}
	res.Status, _ = strconv.Atoi(strings.TrimSpace(tree.ChildText(wbxml.AirSyncStatus)))
	cs := tree.Child(wbxml.AirSyncCollections)
	if cs == nil {
		return res
	}
	for _, e := range cs.ChildrenOf(wbxml.AirSyncCollection) {
		c := SyncCollection{
			CollectionID:  e.ChildText(wbxml.AirSyncCollectionId),
			SyncKey:       e.ChildText(wbxml.AirSyncSyncKey),
			MoreAvailable: e.Has(wbxml.AirSyncMoreAvailable),
		}
		c.Status, _ = strconv.Atoi(strings.TrimSpace(e.ChildText(wbxml.AirSyncStatus)))
		if cmds := e.Child(wbxml.AirSyncCommands); cmds != nil {
			for _, x := range cmds.Children {
				id := x.ChildText(wbxml.AirSyncServerId)
				switch x.Tag {
				case wbxml.AirSyncAdd:
					c.Added = append(c.Added, id)
				case wbxml.AirSyncChange:
					c.Changed = append(c.Changed, id)
				case wbxml.AirSyncDelete, wbxml.AirSyncSoftDelete:
					c.Deleted = append(c.Deleted, id)
				}
			}
		}
		res.Collections = append(res.Collections, c)
	}
	return res
}

// Sync sends a Sync for one collection and returns the response and its
// parsed content.
func (c *Client) Sync(ctx context.Context, syncKey, collectionID string, o SyncOptions) (*Response, SyncResult, error) {
	r, err := c.Do(ctx, "Sync", SyncRequest(syncKey, collectionID, o))
	if err != nil {
		return r, SyncResult{}, err
	}
	if len(r.Body) == 0 {
		return r, SyncResult{Empty: true}, nil
	}
	return r, ParseSync(r.Tree), nil
}

// PingFolder is one folder a Ping watches (MS-ASCMD 2.2.3.69.1): its
// ServerId and Class ("Email", "Calendar", "Contacts", "Tasks", "Notes").
type PingFolder struct {
	ID, Class string
}

// PingRequest returns a Ping document (MS-ASCMD 2.2.1.13): the heartbeat
// in seconds (0 leaves it out) and the folders (none leaves Folders out;
// with neither the document is an empty Ping element).
func PingRequest(heartbeat int, folders ...PingFolder) *wbxml.Element {
	p := wbxml.E(wbxml.PingPing)
	if heartbeat > 0 {
		p.Add(wbxml.T(wbxml.PingHeartbeatInterval, strconv.Itoa(heartbeat)))
	}
	if len(folders) > 0 {
		fs := wbxml.E(wbxml.PingFolders)
		for _, f := range folders {
			fs.Add(wbxml.E(wbxml.PingFolder, wbxml.T(wbxml.PingId, f.ID), wbxml.T(wbxml.PingClass, f.Class)))
		}
		p.Add(fs)
	}
	return p
}

// PingResult is the content of a Ping response (MS-ASCMD 2.2.3.177.10):
// Status 2 lists the changed folders' ServerIds; Status 5 gives the
// nearest allowed HeartbeatInterval, Status 6 MaxFolders.
type PingResult struct {
	Status            int
	Folders           []string
	HeartbeatInterval int
	MaxFolders        int
}

// ParsePing reads a Ping response document; another kind of document
// gives the zero value.
func ParsePing(tree *wbxml.Element) PingResult {
	var res PingResult
	if tree == nil || tree.Tag != wbxml.PingPing {
		return res
	}
	res.Status, _ = strconv.Atoi(strings.TrimSpace(tree.ChildText(wbxml.PingStatus)))
	res.HeartbeatInterval, _ = strconv.Atoi(strings.TrimSpace(tree.ChildText(wbxml.PingHeartbeatInterval)))
	res.MaxFolders, _ = strconv.Atoi(strings.TrimSpace(tree.ChildText(wbxml.PingMaxFolders)))
	if fs := tree.Child(wbxml.PingFolders); fs != nil {
		for _, f := range fs.ChildrenOf(wbxml.PingFolder) {
			res.Folders = append(res.Folders, strings.TrimSpace(f.Value()))
		}
	}
	return res
}

// Ping sends a Ping and returns the response and its parsed content. It
// returns when the server answers: at the heartbeat, on a change, or when
// ctx ends.
func (c *Client) Ping(ctx context.Context, heartbeat int, folders ...PingFolder) (*Response, PingResult, error) {
	r, err := c.Do(ctx, "Ping", PingRequest(heartbeat, folders...))
	if err != nil {
		return r, PingResult{}, err
	}
	return r, ParsePing(r.Tree), nil
}
