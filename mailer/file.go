package mailer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/herald-dev/herald"
)

// FileTransport writes each message as an .eml file into a directory: the
// default when no SMTP relay is configured, and handy in development. A
// file is named by when, what and to whom (20261125T070000.123456789Z-
// confirm-ann@example.org-….eml), and its text parts are written as 8bit
// rather than quoted-printable, so `cat` shows a link as it is, not
// broken by "=3D" and soft line breaks (see readable).
type FileTransport struct {
	dir string
	now func() time.Time
}

// NewFileTransport creates dir (0700) if needed.
func NewFileTransport(dir string) (*FileTransport, error) {
	if dir == "" {
		return nil, fmt.Errorf("mailer: file transport: no directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mailer: file transport: %w", err)
	}
	return &FileTransport{dir: dir, now: time.Now}, nil
}

// Dir is the directory messages are written to.
func (t *FileTransport) Dir() string { return t.dir }

// Send writes m atomically: a temporary file in the same directory,
// fsynced, then renamed, so a reader never sees half a message. Failures
// are temporary SendErrors (a full disk may clear).
func (t *FileTransport) Send(ctx context.Context, m *herald.Message) error {
	if err := ctx.Err(); err != nil {
		return &herald.SendError{Temporary: true, Err: fmt.Errorf("mailer: %w", err)}
	}
	if len(m.Raw) == 0 {
		return &herald.SendError{Err: fmt.Errorf("mailer: empty message")}
	}
	kind := string(m.Kind)
	if kind == "" {
		kind = "email"
	}
	name := t.now().UTC().Format("20060102T150405.000000000Z") + "-" + kind + "-" + fileSafe(m.To) + "-" + shortID(m.MessageID) + ".eml"
	if err := writeAtomic(t.dir, name, readable(m.Raw)); err != nil {
		return &herald.SendError{Temporary: true, Err: fmt.Errorf("mailer: file transport: %w", err)}
	}
	return nil
}

// Close does nothing: every Send finishes its own file.
func (t *FileTransport) Close() error { return nil }

func writeAtomic(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, ".tmp-*.eml")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	// The rename is durable only once the directory is synced.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// shortID is a short fragment of a Message-ID that tells two files to
// one address in the same instant apart.
func shortID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:4])
}

// fileSafe turns an address or a Message-ID into a short file-name
// fragment.
func fileSafe(id string) string {
	id = strings.Trim(id, "<>")
	var b strings.Builder
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '@':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 80 {
			break
		}
	}
	if b.Len() == 0 {
		var r [8]byte
		_, _ = rand.Read(r[:])
		return hex.EncodeToString(r[:])
	}
	return b.String()
}
