package adminui

// routeView is one relay or provider as GET /api/v1/stats reports it.
type routeView struct {
	Name, Kind, State, Until, LastError string
	Weight                              int
	Sent, Failed, Deferred, SetAsides   int
}

// parseRoutes reads the stats' "routes" list leniently.
func parseRoutes(v any) []routeView {
	list, _ := v.([]any)
	var out []routeView
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		num := func(k string) int { n, _ := asInt(m[k]); return n }
		out = append(out, routeView{
			Name: str("name"), Kind: str("kind"), State: str("state"), Until: str("set_aside_until"),
			LastError: str("last_error"), Weight: num("weight"),
			Sent: num("sent"), Failed: num("failed"), Deferred: num("deferred"), SetAsides: num("set_asides"),
		})
	}
	return out
}
