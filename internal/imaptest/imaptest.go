// Package imaptest runs go-imap v2's in-memory IMAP server on loopback
// for tests of the bounce mailbox, with one user, and reads and fills its
// folders the way a mail client would. Only tests import it.
package imaptest

import (
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// The one user of every Server.
const (
	User     = "bounces@blog.example.org"
	Password = "imap-test-password"
)

// Server is an IMAP server on loopback (plain text: imap+insecure://)
// with User's INBOX, and a client logged in as User.
type Server struct {
	// Addr is host:port.
	Addr string
	t    testing.TB
	c    *imapclient.Client
}

// Start runs a server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(User, Password)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	s := &Server{Addr: ln.Addr().String(), t: t}
	if s.c, err = imapclient.DialInsecure(s.Addr, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.c.Login(User, Password).Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.c.Close() })
	return s
}

// URL is the mailbox URL for herald (bounces.mailbox) of INBOX.
func (s *Server) URL() string {
	return "imap+insecure://bounces%40blog.example.org@" + s.Addr + "/INBOX"
}

// Append puts a message in INBOX, unread.
func (s *Server) Append(raw []byte) {
	s.t.Helper()
	cmd := s.c.Append("INBOX", int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		s.t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		s.t.Fatal(err)
	}
}

// Subjects lists the subjects of the messages in a folder (none when the
// folder does not exist).
func (s *Server) Subjects(folder string) []string {
	s.t.Helper()
	st, err := s.c.Select(folder, nil).Wait()
	if err != nil {
		return nil
	}
	if st.NumMessages == 0 {
		return nil
	}
	var all imap.SeqSet
	all.AddRange(1, st.NumMessages)
	msgs, err := s.c.Fetch(all, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.Envelope.Subject)
	}
	return out
}
