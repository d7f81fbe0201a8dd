package mailer

import (
	"context"
	"fmt"
)

// Probe checks that the relay answers: it connects, says EHLO, starts TLS
// and authenticates as a send would, then says QUIT. No mail is sent. The
// relay set uses it before it trusts a relay it had set aside.
func (t *SMTPTransport) Probe(ctx context.Context) error {
	pc, err := t.dial(ctx)
	if err != nil {
		return classify("connect", err)
	}
	if err := pc.c.Noop(); err != nil {
		pc.close()
		return classify("connect", fmt.Errorf("mailer: NOOP to %s: %w", t.addr, err))
	}
	pc.quit()
	return nil
}

// Addr is the relay's host:port.
func (t *SMTPTransport) Addr() string { return t.addr }
