package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Look is GET /api/v1/look: the blog's look and languages as configured
// ([site], mail.reply_to, digest.content and templates_dir).
type Look struct {
	Name         string   `json:"name"`
	URL          string   `json:"url"`
	LogoURL      string   `json:"logo_url"`
	AccentColor  string   `json:"accent_color"`
	Footer       string   `json:"footer"`
	ReplyTo      string   `json:"reply_to"`
	Language     string   `json:"language"`
	Languages    []string `json:"languages"`
	Content      string   `json:"content"`
	TemplatesDir string   `json:"templates_dir"`
	// Overrides are the templates templates_dir replaces.
	Overrides []string `json:"overrides"`
	// Palette is the colours made from the accent, light and dark, with
	// the contrast of each accent on its card.
	Palette LookPalette `json:"palette"`
}

// LookPalette is the accent in both palettes.
type LookPalette struct {
	LightAccent   string  `json:"light_accent"`
	LightContrast float64 `json:"light_contrast"`
	DarkAccent    string  `json:"dark_accent"`
	DarkContrast  float64 `json:"dark_contrast"`
	DarkCard      string  `json:"dark_card"`
}

// Look reads the blog's look.
func (c *Client) Look(ctx context.Context) (*Look, error) {
	var out Look
	return &out, c.call(ctx, http.MethodGet, "/api/v1/look", nil, &out)
}

// LookPreview is a digest of the latest posts (sample posts when there
// are none) in language lang, with the templates in force.
func (c *Client) LookPreview(ctx context.Context, lang string) (string, error) {
	res, err := c.Do(ctx, http.MethodGet, "/api/v1/look/preview?lang="+url.QueryEscape(lang), "", nil)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return "", fmt.Errorf("api: look preview: %w", err)
	}
	return string(b), nil
}
