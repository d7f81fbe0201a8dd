package handlers

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
)

func (s *Server) registerData(r *mux.Router) {
	r.HandleFunc("/preferences/data", s.preferencesData).Methods(http.MethodGet, http.MethodHead)
}

// DataExport is what a reader downloads from the preferences page: every
// field herald keeps about them.
type DataExport struct {
	ExportedAt time.Time      `json:"exported_at"`
	Site       map[string]any `json:"site"`
	Subscriber SubscriberData `json:"subscriber"`
	// Kept says in words what herald keeps and what it does not.
	Kept []string `json:"what_herald_keeps"`
}

// SubscriberData is the whole stored record, without the internal nonce.
type SubscriberData struct {
	ID                uint64           `json:"id"`
	Email             string           `json:"email"`
	Name              string           `json:"name"`
	Status            herald.Status    `json:"status"`
	Frequency         herald.Frequency `json:"frequency"`
	Source            string           `json:"source"`
	CreatedAt         time.Time        `json:"created_at"`
	ConfirmedAt       *time.Time       `json:"confirmed_at"`
	UnsubscribedAt    *time.Time       `json:"unsubscribed_at"`
	UpdatedAt         time.Time        `json:"updated_at"`
	ConfirmationsSent []time.Time      `json:"confirmation_emails_sent"`
	Bounces           int              `json:"consecutive_bounces"`
	LastPostID        uint64           `json:"last_post_delivered"`
	LastRunID         uint64           `json:"last_digest_run"`
	Topics            herald.TopicList `json:"topics"`
	Timezone          string           `json:"timezone"`
	PausedUntil       *time.Time       `json:"paused_until"`
	PausedAt          *time.Time       `json:"paused_at"`
	LastMorning       *time.Time       `json:"last_local_time_digest"`
}

var dataKept = []string{
	"The subscriber record above: your address, the name you gave, your status and how often you hear from us, when you signed up, confirmed, unsubscribed or last changed anything, and how the subscription came in (form, api or import).",
	"When confirmation and link emails were sent to you (the last few, to limit how many an address can get), and how many emails in a row could not be delivered to you.",
	"Which posts and digest run you already got (last_post_delivered, last_digest_run), so that no post reaches you twice.",
	"The topics you chose (none: every post), your time zone (empty: the site's), when your last pause began and ends, and the local date and time of the last digest sent at your morning (last_local_time_digest, written as if in UTC), so that each morning reaches you once.",
	"Emails waiting to be sent to you are kept until they go out or expire; herald keeps no copy of the emails it has sent, and does not track opens or clicks.",
	"The public archive of past digests holds no reader's data or links.",
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// preferencesData: GET /preferences/data?token=T (a preferences token)
// answers a JSON attachment with everything herald keeps about the reader.
func (s *Server) preferencesData(w http.ResponseWriter, r *http.Request) {
	sub, err := s.deps.Subscriptions.ForPreferences(r.Context(), r.URL.Query().Get("token"))
	if err != nil {
		s.tokenError(w, r, err)
		return
	}
	out := DataExport{
		ExportedAt: s.opt.Now().UTC(),
		Site:       map[string]any{"name": s.opt.SiteName, "url": s.opt.SiteURL},
		Subscriber: SubscriberData{
			ID: sub.ID, Email: sub.Email, Name: sub.Name, Status: sub.Status, Frequency: sub.Frequency,
			Source: sub.Source, CreatedAt: sub.CreatedAt, ConfirmedAt: sub.ConfirmedAt,
			UnsubscribedAt: sub.UnsubscribedAt, UpdatedAt: sub.UpdatedAt,
			ConfirmationsSent: sub.ConfirmsSent, Bounces: sub.Bounces,
			LastPostID: sub.Cursor, LastRunID: sub.LastRunID,
			Topics: sub.Topics, Timezone: sub.Timezone, PausedUntil: sub.PausedUntil,
			PausedAt: optTime(sub.PausedAt), LastMorning: optTime(sub.LastSlot),
		},
		Kept: dataKept,
	}
	if out.Subscriber.ConfirmationsSent == nil {
		out.Subscriber.ConfirmationsSent = []time.Time{}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		s.error(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="subscription-data.json"`)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(b, '\n'))
	}
}
