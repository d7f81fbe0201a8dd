package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// AxeVersion is the axe-core release the accessibility checks run; .ci/run
// installs it with npm into .cache/axe at the repository's root:
//
//	npm install --no-save --prefix .cache/axe axe-core@4.14.1
const AxeVersion = "4.14.1"

// axeSource reads axe.min.js: HERALD_AXE_JS, or where .ci/run installs it.
func axeSource() (string, error) {
	path := os.Getenv("HERALD_AXE_JS")
	if path == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		path = filepath.Join(root, ".cache", "axe", "node_modules", "axe-core", "axe.min.js")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("browsertest: no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Violation is one axe-core rule a page breaks, with where.
type Violation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

func (v Violation) String() string {
	return fmt.Sprintf("%s (%s): %s\n      at %s", v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n      at "))
}

// Axe runs axe-core in the page ctx shows now against WCAG 2.1 A and AA
// (the rules tagged wcag2a, wcag2aa, wcag21a, wcag21aa) and fails the test
// with every violation, naming the page what. Without axe-core installed
// the test skips, except under CI=true.
func Axe(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	src, err := axeSource()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("axe-core not found, and CI=true: accessibility checks must run (%v)", err)
		}
		t.Skipf("axe-core not found (%v): npm install --no-save --prefix .cache/axe axe-core@%s", err, AxeVersion)
	}
	// The script is evaluated by the DevTools protocol, which a page's
	// Content-Security-Policy does not stop: the page is checked as served.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](src+";\ntrue")); err != nil {
		t.Fatalf("%s: loading axe-core: %v", what, err)
	}
	const run = `axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}, resultTypes: ["violations"]})
	  .then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help,
	    nodes: v.nodes.map(n => n.target.join(" ") + ": " + (n.failureSummary || "").replace(/\s+/g, " ") + " " + n.html.slice(0, 160))}))))`
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](run, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: running axe-core: %v", what, err)
	}
	var vs []Violation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("%s: axe-core's answer: %v", what, err)
	}
	for _, v := range vs {
		t.Errorf("%s: WCAG 2.1 A/AA violation %s", what, v)
	}
}

// controlContrast is the non-text contrast check (WCAG 1.4.11): every
// form field, and every button drawn by a border or a fill, must stand
// out from what is around it by 3:1, by its border or by its fill.
// Controls the browser draws itself (checkboxes, radios, file pickers)
// and text-only buttons are left out; so are controls nobody sees. A
// radio whose label is the visible control (the frequency cards) is
// checked through that label.
const controlContrast = `(() => {
  const parse = c => { const m = /rgba?\(([^)]+)\)/.exec(c); if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const over = (top, under) => top.a >= 1 ? top : {r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a), b: top.b * top.a + under.b * (1 - top.a), a: 1};
  const bgOf = el => { const layers = []; for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; } }
    let c = {r: 255, g: 255, b: 255, a: 1}; for (let i = layers.length - 1; i >= 0; i--) c = over(layers[i], c); return c; };
  const name = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.name ? "[name=" + el.name + "]" : "") + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "");
  const out = [];
  const controls = [...document.querySelectorAll("input, select, textarea, button, .choice input")];
  for (const c of controls) {
    let el = c;
    if (c.matches("input[type=hidden], input[type=checkbox], input[type=file]")) continue;
    if (c.matches("input[type=radio]")) { const span = c.closest(".choice") && c.closest(".choice").querySelector("span"); if (!span) continue; el = span; }
    const cs = getComputedStyle(el), r = el.getBoundingClientRect();
    if (cs.visibility === "hidden" || cs.display === "none" || r.width < 2 || r.height < 2 || r.right < 0 || r.bottom < 0 || el.closest("[aria-hidden=true]")) continue;
    const outer = bgOf(el.parentElement);
    const fill = parse(cs.backgroundColor), border = parse(cs.borderTopColor), bw = parseFloat(cs.borderTopWidth);
    const hasFill = fill && fill.a > 0, hasBorder = bw > 0 && border && border.a > 0 && cs.borderTopStyle !== "none";
    if (c.tagName === "BUTTON" && !hasBorder && !hasFill) continue; // a text-only button: its text identifies it
    let best = 0, seen = [];
    if (hasBorder) { const x = ratio(over(border, outer), outer); best = Math.max(best, x); seen.push("border " + x.toFixed(2)); }
    if (hasFill) { const x = ratio(over(fill, outer), outer); best = Math.max(best, x); seen.push("fill " + x.toFixed(2)); }
    if (best < 3) out.push(name(el) + ": " + (seen.join(", ") || "no border or fill") + " against its background");
  }
  return out;
})()`

// ControlContrast checks the form controls of the page ctx shows now, in
// the light and in the dark color scheme, and fails the test for each
// that does not reach 3:1 (see controlContrast).
func ControlContrast(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	for _, scheme := range []string{"light", "dark"} {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		if err != nil {
			t.Fatalf("%s: emulate %s: %v", what, scheme, err)
		}
		bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](controlContrast))
		if err != nil {
			t.Fatalf("%s: contrast check: %v", what, err)
		}
		for _, b := range bad {
			t.Errorf("%s (%s): non-text contrast below 3:1 (WCAG 1.4.11): %s", what, scheme, b)
		}
	}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		t.Fatal(err)
	}
}
