package subscription

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/herald-dev/herald"
)

const secretKey = "hmac_secret"

// LoadSecret returns the HMAC key for links: the configured one when set,
// else one generated on first start and kept in the database, so links in
// mail already sent keep working across restarts.
func LoadSecret(ctx context.Context, st herald.SettingsStore, configured string) ([]byte, error) {
	if configured != "" {
		return []byte(configured), nil
	}
	b, err := st.Setting(ctx, secretKey)
	if err != nil {
		return nil, fmt.Errorf("subscription: load secret: %w", err)
	}
	if len(b) >= 16 {
		return b, nil
	}
	b = make([]byte, 32)
	_, _ = rand.Read(b)
	if err := st.PutSetting(ctx, secretKey, b); err != nil {
		return nil, fmt.Errorf("subscription: save secret: %w", err)
	}
	return b, nil
}
