package templates

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Palette is the colours of pages and emails, light and dark.
type Palette struct {
	Light, Dark Colors
}

// Colors is one palette: page background, card, text, secondary text,
// rules, links and buttons, and the text on a button.
type Colors struct {
	Bg, Card, Ink, Muted, Line, Accent, AccentInk string
}

// DefaultAccent is site.accent_color's default.
const DefaultAccent = "#1f5fbf"

// MinContrast is WCAG 2's AA ratio for body text.
const MinContrast = 4.5

// NewPalette makes both palettes from the accent colour ("" = the
// default). The dark palette's accent is the same hue made light enough
// to read on the dark card, and each palette's button text is whichever
// of its ink colours reads best on its accent.
func NewPalette(accent string) Palette {
	if accent == "" {
		accent = DefaultAccent
	}
	a, err := ParseColor(accent)
	if err != nil {
		a, _ = ParseColor(DefaultAccent)
	}
	light := Colors{Bg: "#f6f5f2", Card: "#ffffff", Ink: "#1d1d1f", Muted: "#5f6368", Line: "#e3e1dc", Accent: a.Hex()}
	dark := Colors{Bg: "#151618", Card: "#1f2023", Ink: "#ececec", Muted: "#a3a7ad", Line: "#34363a"}
	card, _ := ParseColor(dark.Card)
	da := a
	for i := 0; i < 40 && Contrast(da, card) < MinContrast; i++ {
		da = da.mix(RGB{255, 255, 255}, 0.08)
	}
	dark.Accent = da.Hex()
	light.AccentInk = bestInk(a, "#ffffff", light.Ink)
	dark.AccentInk = bestInk(da, "#0b1a33", "#ffffff")
	return Palette{Light: light, Dark: dark}
}

func bestInk(bg RGB, inks ...string) string {
	best, bestRatio := inks[0], 0.0
	for _, s := range inks {
		c, _ := ParseColor(s)
		if r := Contrast(bg, c); r > bestRatio {
			best, bestRatio = s, r
		}
	}
	return best
}

// RGB is an sRGB colour.
type RGB struct{ R, G, B uint8 }

// ParseColor reads "#rgb" or "#rrggbb".
func ParseColor(s string) (RGB, error) {
	h := strings.TrimPrefix(strings.TrimSpace(s), "#")
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	if len(h) != 6 || !strings.HasPrefix(strings.TrimSpace(s), "#") {
		return RGB{}, fmt.Errorf("want a colour like \"#1f5fbf\", got %q", s)
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return RGB{}, fmt.Errorf("want a colour like \"#1f5fbf\", got %q", s)
	}
	return RGB{uint8(v >> 16), uint8(v >> 8), uint8(v)}, nil
}

// Hex is "#rrggbb".
func (c RGB) Hex() string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

func (c RGB) mix(o RGB, f float64) RGB {
	m := func(a, b uint8) uint8 { return uint8(math.Round(float64(a) + (float64(b)-float64(a))*f)) }
	return RGB{m(c.R, o.R), m(c.G, o.G), m(c.B, o.B)}
}

// luminance is WCAG 2's relative luminance.
func (c RGB) luminance() float64 {
	ch := func(v uint8) float64 {
		s := float64(v) / 255
		if s <= 0.04045 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(c.R) + 0.7152*ch(c.G) + 0.0722*ch(c.B)
}

// Contrast is WCAG 2's contrast ratio of two colours, 1 to 21.
func Contrast(a, b RGB) float64 {
	la, lb := a.luminance(), b.luminance()
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// CheckAccent refuses an accent colour that white text on it, or it on
// white, would not read at MinContrast; the message has the ratio.
func CheckAccent(s string) error {
	c, err := ParseColor(s)
	if err != nil {
		return err
	}
	if r := Contrast(c, RGB{255, 255, 255}); r < MinContrast {
		return fmt.Errorf("%s has a contrast of %.2f:1 against white, below %.1f:1 (WCAG AA): links and buttons in it would be hard to read; choose a darker colour", c.Hex(), math.Floor(r*100)/100, MinContrast)
	}
	return nil
}
