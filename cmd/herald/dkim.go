package main

// DKIM: the signer serve wraps its transport in, and `herald dkim-keygen`,
// which makes a key and prints the DNS records to publish.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"strings"

	"github.com/herald-dev/herald/mailer"
)

// dkimSigner loads the [dkim] key; nil when DKIM is off. Errors name
// dkim.private_key.
func dkimSigner(c DKIMConfig) (*mailer.Signer, error) {
	if c.Domain == "" {
		return nil, nil
	}
	pemBytes, err := os.ReadFile(c.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("dkim.private_key: cannot read %q: %v", c.PrivateKey, errors.Unwrap(err))
	}
	s, err := mailer.NewSigner(c.Domain, c.Selector, pemBytes)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "mailer: ")
		switch {
		case strings.HasPrefix(msg, "dkim domain"):
			return nil, fmt.Errorf("dkim.domain: %s", msg)
		case strings.HasPrefix(msg, "dkim selector"):
			return nil, fmt.Errorf("dkim.selector: %s", msg)
		}
		return nil, fmt.Errorf("dkim.private_key: %q: %s", c.PrivateKey, msg)
	}
	return s, nil
}

// cmdDKIMKeygen: herald dkim-keygen [--domain D] [--selector S]
// [--type rsa|ed25519] [--out FILE].
func cmdDKIMKeygen(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("dkim-keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFile(fs, getenv)
	domain := fs.String("domain", "", "signing domain (default: dkim.domain, else the domain of mail.from)")
	selector := fs.String("selector", "", "selector (default: dkim.selector, else \"herald\")")
	kind := fs.String("type", "rsa", "key type: rsa (2048 bits, understood everywhere) or ed25519 (short, not yet verified by every receiver)")
	out := fs.String("out", "", "where to write the private key (default: dkim-SELECTOR.pem); an existing file is never overwritten")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	// The config only fills in defaults; a missing or broken one is fine
	// when the flags say everything.
	var cfg *Config
	if *file != "" {
		c, err := LoadConfig(*file, getenv)
		if err != nil && (*domain == "" || *selector == "") {
			return err
		}
		cfg = c
	}
	if *domain == "" && cfg != nil {
		*domain = cfg.DKIM.Domain
		if *domain == "" {
			if a, err := mail.ParseAddress(cfg.Mail.From); err == nil {
				*domain = a.Address[strings.LastIndexByte(a.Address, '@')+1:]
			}
		}
	}
	if *domain == "" {
		return usageError{errors.New("--domain is required (the domain of your From address, e.g. blog.example.org)")}
	}
	*domain = strings.ToLower(strings.TrimSuffix(*domain, "."))
	if *selector == "" {
		*selector = "herald"
		if cfg != nil && cfg.DKIM.Selector != "" {
			*selector = cfg.DKIM.Selector
		}
	}
	k := strings.ToLower(*kind)
	if k != "rsa" && k != "ed25519" {
		return usageError{fmt.Errorf("--type must be rsa or ed25519, got %q", *kind)}
	}
	if *out == "" {
		*out = "dkim-" + *selector + ".pem"
	}
	keyPEM, txt, err := mailer.GenerateKey(k)
	if err != nil {
		return err
	}
	// Check the names before writing anything.
	if _, err := mailer.NewSigner(*domain, *selector, keyPEM); err != nil {
		return usageError{errors.New(strings.TrimPrefix(err.Error(), "mailer: "))}
	}
	if err := writeNewFile(*out, keyPEM); err != nil {
		return err
	}
	abs, err := filepath.Abs(*out)
	if err != nil {
		abs = *out
	}
	name := *selector + "._domainkey." + *domain
	w := &errWriter{w: stdout}
	label := map[string]string{"rsa": "RSA-2048", "ed25519": "Ed25519"}[k]
	w.printf("Wrote the %s private key to %s (mode 0600). Keep it secret; back it up.\n\n", label, abs)
	w.printf("1. Publish this DNS TXT record (DKIM):\n\n")
	w.printf("   name:  %s\n", name)
	w.printf("   value: %s\n\n", strings.Join(txtStrings(txt), " "))
	w.printf("   In a zone file:\n   %s. 3600 IN TXT ( %s )\n\n", name, strings.Join(txtStrings(txt), "\n      "))
	w.printf("2. Add to herald's config, then check it with `herald check-config`:\n\n")
	w.printf("   [dkim]\n   domain = %q\n   selector = %q\n   private_key = %q\n\n", *domain, *selector, abs)
	spf := "v=spf1 mx ~all"
	if cfg != nil && cfg.Mail.Transport == "smtp" && cfg.SMTP.Host != "" && cfg.SMTP.Host != "localhost" {
		spf = "v=spf1 a:" + cfg.SMTP.Host + " mx ~all"
	}
	w.printf("3. Suggested SPF record (TXT at %s), if you have none yet; list the servers that send\n", *domain)
	w.printf("   your mail (your relay may give you an include: to use instead):\n\n   %q\n\n", spf)
	w.printf("4. Suggested DMARC record (TXT at _dmarc.%s): start with p=none and read the reports,\n", *domain)
	w.printf("   then move to quarantine or reject:\n\n   %q\n", "v=DMARC1; p=none; adkim=r; aspf=r; rua=mailto:dmarc-reports@"+*domain)
	if cfg != nil {
		if a, err := mail.ParseAddress(cfg.Mail.From); err == nil {
			from := strings.ToLower(a.Address[strings.LastIndexByte(a.Address, '@')+1:])
			if from != *domain && !strings.HasSuffix(from, "."+*domain) {
				w.printf("\nWarning: mail.from's domain %q does not align with %q: DMARC will not pass on DKIM.\n", from, *domain)
			}
		}
	}
	return w.err
}

// txtStrings splits a TXT value into quoted strings of at most 255 bytes,
// as DNS requires (an RSA-2048 record is about 400).
func txtStrings(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, `"`+v[:255]+`"`)
		v = v[255:]
	}
	return append(out, `"`+v+`"`)
}

// writeNewFile writes b to a file that must not exist yet, mode 0600.
func writeNewFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists already; not overwriting a key (choose another --out)", path)
	} else if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

// errWriter keeps the first write error, so a long printout checks once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
