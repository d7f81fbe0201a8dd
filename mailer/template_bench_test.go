package mailer

import (
	"testing"
	"time"
)

// BenchmarkTemplateCompose is one digest email from the shared template:
// the per-reader work Compose did whole before (compare BenchmarkCompose).
func BenchmarkTemplateCompose(b *testing.B) {
	tpl, err := NewTemplate(templateEmail(), slotUnsub, slotPrefs)
	if err != nil {
		b.Fatal(err)
	}
	r := &Recipient{
		To: "reader@example.com", ToName: "Ann Reader", Date: time.Date(2025, 3, 4, 7, 0, 0, 0, time.UTC),
		MessageID: NewMessageID("digest@blog.example.org", "run", "1", "sub", "2"),
		Values: []string{
			"https://news.example.org/unsubscribe?token=AgAAAAAAAeJAAAAAAAAAAAAAAAAAAAAAAOLS6QqI5XgDhXAt-3fNn3U",
			"https://news.example.org/preferences?token=AwAAAAAAAeJAAAAAAAAAAAAAAAAAAAAAAM5bgYrsWxXo7r0hJtx9G3E",
		},
	}
	b.Run("fresh-buffer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tpl.Compose(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reused-buffer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m, err := tpl.Compose(r)
			if err != nil {
				b.Fatal(err)
			}
			r.Buf = m.Raw
		}
	})
}

// BenchmarkNewTemplate is the once-per-post-set work: header block and
// quoted-printable body.
func BenchmarkNewTemplate(b *testing.B) {
	e := templateEmail()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewTemplate(e, slotUnsub, slotPrefs); err != nil {
			b.Fatal(err)
		}
	}
}
