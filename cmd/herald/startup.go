package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// announce prints, for the person who just started herald, what it serves,
// where mail goes, where the data is, and what is still at a default that
// would hurt in production. The warnings are logged as well (loudly, for
// log collectors), and shown on the admin dashboard.
func (a *app) announce(w io.Writer) {
	cfg := a.cfg
	warnings := cfg.Warnings()
	for _, msg := range warnings {
		a.log.Warn("config: " + msg)
	}
	if w == nil {
		return
	}
	base := strings.TrimSuffix(cfg.Server.BaseURL, "/")
	var b strings.Builder
	fmt.Fprintf(&b, "herald %s is running.\n", version)
	fmt.Fprintf(&b, "  public address  %s/  (subscribe form at %s/subscribe)\n", base, base)
	fmt.Fprintf(&b, "  listening       http on %s\n", a.ln.Addr())
	if a.tls != nil {
		fmt.Fprintf(&b, "                  https on %s for %s (certificates from %s, kept in %s); http on %s redirects to https\n",
			a.tls.httpsLn.Addr(), strings.Join(a.tls.order, ", "), cfg.Server.ACMEDirectory, abs(cfg.certDir()), a.tls.httpLn.Addr())
	}
	if cfg.Admin.Token != "" {
		fmt.Fprintf(&b, "  admin           %s/admin/  (log in with admin.token)\n", base)
	} else {
		fmt.Fprintf(&b, "  admin           off (no admin.token)\n")
	}
	switch cfg.Mail.Transport {
	case "smtp", "ses":
		fmt.Fprintf(&b, "  mail            %s", cfg.mailSummary())
		if cfg.DKIM.Domain != "" {
			fmt.Fprintf(&b, ", DKIM-signed for %s (selector %s)", cfg.DKIM.Domain, cfg.DKIM.Selector)
		}
		b.WriteString("\n")
	default:
		fmt.Fprintf(&b, "  mail            written as .eml files to %s (not sent)\n", abs(cfg.Mail.OutboxDir))
	}
	fmt.Fprintf(&b, "  database        %s\n", abs(cfg.Store.Path))
	if cfg.Store.BackupEvery.Duration > 0 {
		fmt.Fprintf(&b, "  backups         every %s to %s, keeping %d\n", cfg.Store.BackupEvery.Duration, abs(cfg.backupDir()), cfg.Store.BackupKeep)
	} else {
		fmt.Fprintf(&b, "  backups         none scheduled (set [store] backup_every, or run `herald backup FILE`)\n")
	}
	fmt.Fprintf(&b, "  feeds           %d watched\n", len(cfg.Feeds))
	if len(warnings) > 0 {
		fmt.Fprintf(&b, "\n%d thing(s) to fix before this serves real readers:\n", len(warnings))
		for _, msg := range warnings {
			fmt.Fprintf(&b, "  WARNING: %s\n", msg)
		}
	}
	_, _ = io.WriteString(w, b.String())
}

// abs shows a path as an absolute one where it can.
func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
