package eas

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the front door's Prometheus metrics. They are registered on
// the registry given to New (never the global one), which the admin
// listener serves.
type Metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	inFlight     prometheus.Gauge
	parked       prometheus.Gauge
	authFailures prometheus.Counter
	authDelays   prometheus.Counter
}

// newMetrics creates the metrics and registers them on reg.
func newMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "easgate_eas_requests_total",
			Help: "EAS requests answered, by command, HTTP status and EAS top-level status (0 when none was sent).",
		}, []string{"command", "code", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "easgate_eas_request_duration_seconds",
			Help: "Time from receiving an EAS request to having written its response, by command. Ping and heartbeat Sync include their wait.",
			// From a cached FolderSync to a Ping held for its full
			// heartbeat (up to 3540 s).
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600},
		}, []string{"command"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "easgate_eas_requests_in_flight",
			Help: "EAS requests being handled now, long-polls included.",
		}),
		parked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "easgate_eas_requests_parked",
			Help: "Waiting Pings and hanging Syncs whose connection is parked (held without a net/http goroutine); counted in easgate_eas_requests_in_flight too.",
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "easgate_eas_auth_failures_total",
			Help: "HTTP Basic logins refused by the mail server.",
		}),
		authDelays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "easgate_eas_auth_delays_total",
			Help: "Logins slowed down because of earlier failures for the same user and address.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight, m.parked, m.authFailures, m.authDelays} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// metricCommand bounds the command label to the names EAS defines plus
// OPTIONS, GET and Autodiscover.
func metricCommand(name string) string {
	if c, ok := commandByName(name); ok {
		return c.Name
	}
	switch name {
	case "OPTIONS", "GET", "Autodiscover":
		return name
	}
	if name == "" {
		return "none"
	}
	return "unknown"
}

func (m *Metrics) observe(cmd string, code, status int, d time.Duration) {
	cmd = metricCommand(cmd)
	m.requests.WithLabelValues(cmd, strconv.Itoa(code), strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(cmd).Observe(d.Seconds())
}

// DeviceCounter returns the number of devices in each state (e.g.
// "allowed", "blocked", "quarantined", "wipe-pending"), for the devices
// gauge. The gateway implements it over the device store.
type DeviceCounter func(ctx context.Context) (map[string]int, error)

// deviceCollector is a prometheus.Collector that asks a DeviceCounter at
// every scrape, so the gauge reflects the store shared by all gateway
// instances rather than what this process has seen.
type deviceCollector struct {
	desc    *prometheus.Desc
	count   DeviceCounter
	timeout time.Duration
	log     *slog.Logger
}

// NewDeviceCollector returns a collector for the gauge
// easgate_devices{state=…}, filled by count at each scrape (bounded by
// timeout). Register it on the same registry as the server's metrics. A
// failing count is logged and yields no samples for that scrape.
func NewDeviceCollector(count DeviceCounter, timeout time.Duration, log *slog.Logger) prometheus.Collector {
	if log == nil {
		log = slog.Default()
	}
	return &deviceCollector{
		desc:    prometheus.NewDesc("easgate_devices", "Known devices by state, from the device store.", []string{"state"}, nil),
		count:   count,
		timeout: timeout,
		log:     log,
	}
}

// Describe implements prometheus.Collector.
func (c *deviceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *deviceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		c.log.Warn("counting devices for metrics failed", "err", err)
		return
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), state)
	}
}
