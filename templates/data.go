package templates

import (
	htmltemplate "html/template"
	"time"
)

// The data each template gets. docs/templates.md lists them for people
// who write their own templates; keep the two in step.

// Site is the blog's name, address and look: .Site in every template.
type Site struct {
	Name string
	URL  string // the blog itself; "" when not configured
	// LogoURL is shown at the top of pages and emails ("" = the name).
	LogoURL string
	// Footer is the owner's text at the foot of every email and page
	// (e.g. the postal address bulk-mail laws ask for); split it with
	// {{range lines .Site.Footer}}.
	Footer string
	// Colors are the light and dark palettes, made from site.accent_color.
	Colors Palette
}

// EmailData is the data of an email template: each embeds Email.
type EmailData interface{ email() *Email }

// Email is what every email template gets.
type Email struct {
	Site Site
	// Subject and Preheader are what the text part's "subject" and
	// "preheader" blocks render to (the HTML part shows them).
	Subject   string
	Preheader string
}

func (e *Email) email() *Email { return e }

// Image is a picture sized for the email: Width is at most the column
// (ColumnWidth), Height scaled with it (0 when unknown).
type Image struct {
	URL, Alt      string
	Width, Height int
}

// ColumnWidth is the width of an email's content column in pixels: the
// 600px card less its padding. Images are never wider.
const ColumnWidth = 544

// DigestPost is one post in a digest.
type DigestPost struct {
	Title, URL, Author string
	Categories         string // comma-separated
	PublishedAt        time.Time
	// Body is the post's summary (digest.content = "summary") or whole
	// content ("full"): sanitised, balanced HTML, images fitted to the
	// column.
	Body htmltemplate.HTML
	// Text is Body as plain text, for the text part.
	Text string
	// Image is the lead image (nil: none, or it is in Body already).
	Image *Image
}

// DigestEmail is email/digest.html and .txt: a digest, the single-post
// email of instant readers, the test email, and the archive's web copy.
type DigestEmail struct {
	Email
	// Count is how many new posts there are (shown or linked).
	Count int
	// Posts are shown newest first; More counts the older ones left out,
	// all of them at MoreURL.
	Posts   []DigestPost
	More    int
	MoreURL string
	// Full: the posts carry their whole content.
	Full bool
	// Archive: the public web copy (no reader's links).
	Archive bool
	// Frequency is the reader's: instant, daily or weekly.
	Frequency string
	// The reader's own links (placeholders until each reader's email is
	// made).
	UnsubscribeURL, PrefsURL string
}

// ConfirmEmail is email/confirm.html and .txt: the double opt-in.
// Nothing the visitor typed but the address is in it.
type ConfirmEmail struct {
	Email
	Address    string
	Frequency  string
	ConfirmURL string
	// TTL is how long the link works.
	TTL time.Duration
}

// WelcomeEmail is email/welcome.html and .txt, sent once a reader
// confirmed (mail.welcome).
type WelcomeEmail struct {
	Email
	Address, Frequency string
	// FromAddress is mail.from's address, to add to contacts;
	// AddToContacts is false when it is a local address nobody can reach.
	FromAddress              string
	AddToContacts            bool
	PrefsURL, UnsubscribeURL string
}

// LinkEmail is email/link.html and .txt: the link to a reader's
// preferences, sent when they ask for it ("email me my link", Reason
// "asked") or sign up again while subscribed (Reason "again").
type LinkEmail struct {
	Email
	Address, Reason          string
	PrefsURL, UnsubscribeURL string
}

// SampleEmail is made-up data for email name: Load tries every template
// on it, and the admin UI shows it.
func SampleEmail(name string) EmailData {
	when := time.Date(2026, time.March, 2, 7, 0, 0, 0, time.UTC)
	switch name {
	case "digest":
		return &DigestEmail{
			Count: 3, More: 1, MoreURL: "https://blog.example.org/", Frequency: "daily",
			UnsubscribeURL: "https://news.example.org/unsubscribe?token=sample",
			PrefsURL:       "https://news.example.org/preferences?token=sample",
			Posts: []DigestPost{
				{Title: "A bench from an old door", URL: "https://blog.example.org/bench", Author: "Ada", Categories: "Workshop", PublishedAt: when,
					Body: "<p>An oak door, a saw and a free weekend.</p>", Text: "An oak door, a saw and a free weekend.",
					Image: &Image{URL: "https://blog.example.org/bench.jpg", Alt: "The bench", Width: ColumnWidth, Height: 363}},
				{Title: "Why the tomatoes didn’t ripen", URL: "https://blog.example.org/tomatoes", PublishedAt: when.Add(-24 * time.Hour),
					Body: "<p>Last summer was cold and wet.</p>", Text: "Last summer was cold and wet."},
			},
		}
	case "confirm":
		return &ConfirmEmail{Address: "reader@example.net", Frequency: "weekly", ConfirmURL: "https://news.example.org/confirm?token=sample", TTL: 168 * time.Hour}
	case "welcome":
		return &WelcomeEmail{Address: "reader@example.net", Frequency: "instant", FromAddress: "digest@blog.example.org", AddToContacts: true,
			PrefsURL: "https://news.example.org/preferences?token=sample", UnsubscribeURL: "https://news.example.org/unsubscribe?token=sample"}
	case "link":
		return &LinkEmail{Address: "reader@example.net", Reason: "again",
			PrefsURL: "https://news.example.org/preferences?token=sample", UnsubscribeURL: "https://news.example.org/unsubscribe?token=sample"}
	}
	return nil
}

// SamplePage is made-up data for page name, with the keys the handlers
// fill in (docs/templates.md lists them per page), so the check of an
// override at start renders it with values of the types it will get.
func SamplePage(name string) map[string]any {
	return map[string]any{
		"Title": "Sample", "Nonce": "sample", "Action": "/sample", "Email": "reader@example.net", "Name": "Ada",
		"Frequency": "daily", "Token": "sample", "PrefsURL": "/preferences?token=sample",
		"Status": "confirmed", "Error": "", "Field": "", "Done": "", "Resent": false, "Sent": false, "Heading": "",
		"Links": []struct{ URL, Label string }{{URL: "/", Label: "Subscribe again"}}, "Wait": "", "Challenge": nil,
		"Lang": "en", "Languages": []LangLink{{Code: "en", Name: "English", URL: "?lang=en", Current: true}},
		"Subscribed": true, "Confirmed": true, "Topics": []map[string]any{{"Name": "Garden", "Checked": true}, {"Name": "Workshop", "Checked": false}},
		"Timezone": "Europe/Berlin", "SiteZone": "Europe/London", "LocalTime": true, "PauseWeeks": []int{1, 2, 4},
		"Paused": false, "Resumes": "",
	}
}

// LangLink is one entry of a page's language menu (.Languages).
type LangLink struct {
	Code, Name, URL string
	Current         bool
}
