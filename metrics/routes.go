package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-dev/herald"
)

// AddRoutes exports how mail fares through each relay or provider, read
// from r at every scrape: herald_route_messages_total{route,kind,result}
// (sent, failed, deferred), herald_route_set_aside (1 while a relay is
// set aside or probed) and herald_route_set_asides_total.
func (m *Metrics) AddRoutes(r herald.RouteReporter) {
	m.reg.MustRegister(&routeCollector{r: r,
		msgs: prometheus.NewDesc("herald_route_messages_total",
			"Messages per relay or provider since start, by result: sent, failed (refused for good), deferred (a temporary failure: retried elsewhere or later).",
			[]string{"route", "kind", "result"}, nil),
		aside: prometheus.NewDesc("herald_route_set_aside",
			"1 while the relay is set aside after repeated failures (or being probed), else 0.", []string{"route", "kind"}, nil),
		asides: prometheus.NewDesc("herald_route_set_asides_total",
			"How often the relay was set aside since start.", []string{"route", "kind"}, nil),
	})
}

type routeCollector struct {
	r                   herald.RouteReporter
	msgs, aside, asides *prometheus.Desc
}

func (c *routeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.msgs
	ch <- c.aside
	ch <- c.asides
}

func (c *routeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, rt := range c.r.Routes() {
		for result, n := range map[string]int64{"sent": rt.Sent, "failed": rt.Failed, "deferred": rt.Deferred} {
			ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.CounterValue, float64(n), rt.Name, rt.Kind, result)
		}
		v := 0.0
		if rt.State != herald.RouteUp {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.aside, prometheus.GaugeValue, v, rt.Name, rt.Kind)
		ch <- prometheus.MustNewConstMetric(c.asides, prometheus.CounterValue, float64(rt.SetAsides), rt.Name, rt.Kind)
	}
}
