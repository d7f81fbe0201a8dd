package herald

import (
	"context"
	"time"
)

// ArchiveEntry is the public web copy of one digest run: the posts that
// arrived since the previous entry of its frequency, rendered without any
// reader's links.
type ArchiveEntry struct {
	// ID is the id of the run it was made from.
	ID        uint64    `json:"id"`
	Frequency Frequency `json:"frequency"`
	Date      time.Time `json:"date"`
	// After and Cutoff bound the posts it holds: After < post ID <= Cutoff.
	After   uint64   `json:"after"`
	Cutoff  uint64   `json:"cutoff"`
	Subject string   `json:"subject"`
	Posts   int      `json:"posts"`
	Titles  []string `json:"titles,omitempty"` // the posts' titles, newest first
	HTML    string   `json:"html"`
	Text    string   `json:"text"`
}

// ArchiveStore keeps the archive of past digests.
type ArchiveStore interface {
	// PutArchive saves e under e.ID (replacing an entry with that id).
	PutArchive(ctx context.Context, e *ArchiveEntry) error
	// Archive returns the entry with id; ENOTFOUND if none.
	Archive(ctx context.Context, id uint64) (*ArchiveEntry, error)
	// ListArchive returns up to limit entries with ID < before (0: from
	// the newest), newest first, and the before value of the next page
	// (0: no more).
	ListArchive(ctx context.Context, limit int, before uint64) ([]*ArchiveEntry, uint64, error)
	// LatestArchive returns the newest entry of freq, nil if there is none.
	LatestArchive(ctx context.Context, freq Frequency) (*ArchiveEntry, error)
}
