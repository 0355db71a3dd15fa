// Package apiserver serves the Kubernetes REST API over HTTP (gin) for every
// resource in the registry catalogue, storing objects in
// controlplane/storage. It is generic: the request pipeline (decode,
// default, prepare, validate, store, encode), watches, patches, server-side
// apply, deletion with finalizers and grace periods, discovery, tables and
// errors as metav1.Status are the same for every resource, and what differs
// between resources comes from registry.Strategy. The few resources with
// behaviour kube-apiserver hard-codes (namespaces' lifecycle, Services'
// ClusterIP and NodePort allocation, pods/binding, the scale subresources)
// have their code here too, each in its own file.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/managedfields"

	"github.com/skiff-project/skiff/controlplane/registry"
	"github.com/skiff-project/skiff/controlplane/storage"
)

// MaxBodyBytes is the largest request body accepted (kube-apiserver's
// limit is 3 MiB); larger bodies get 413.
const MaxBodyBytes = 3 << 20

// OpenAPI serves the OpenAPI documents; controlplane/apiserver/openapi
// implements it.
type OpenAPI interface {
	Register(r gin.IRouter)
}

// Config configures a Server.
type Config struct {
	Store     storage.Interface
	Resources []*registry.Resource
	Log       *slog.Logger

	// Authenticate reports whether a request carries valid credentials.
	// Nil disables authentication (tests only).
	Authenticate func(r *http.Request) bool
	// TypeConverter for server-side apply; nil uses a deduced one.
	TypeConverter managedfields.TypeConverter
	// OpenAPI, when set, serves /openapi/v2 and /openapi/v3.
	OpenAPI OpenAPI

	// ServiceCIDR allocates Service ClusterIPs (default 10.96.0.0/12).
	ServiceCIDR *net.IPNet
	// NodePortBase and NodePortSize give the NodePort range (default
	// 30000 and 2768: 30000-32767).
	NodePortBase, NodePortSize int
	// PublicAddress and SecurePort are where the kubernetes Service in
	// default points.
	PublicAddress net.IP
	SecurePort    int

	// Registerer for metrics; nil creates a private registry served on
	// /metrics.
	Metrics *prometheus.Registry

	// MaxRequestsInFlight bounds the requests served at once, watches
	// excepted (default 400, as kube-apiserver's
	// --max-requests-inflight); beyond it requests get 429 with
	// Retry-After.
	MaxRequestsInFlight int

	// BookmarkInterval is how often a watch that asked for bookmarks
	// gets one (default 1 minute, as kube-apiserver). A bookmark carries
	// the newest revision known complete: the last event sent or etcd's
	// last progress notification.
	BookmarkInterval time.Duration

	// RepairInterval is how often the ClusterIP and NodePort allocation
	// repair runs (default DefaultRepairInterval, 3 minutes as
	// kube-apiserver); it also runs once when Bootstrap completes, and
	// stops with Close. Negative disables it.
	RepairInterval time.Duration
}

// Server is the API server. Handler serves requests once New returns;
// Bootstrap creates what must exist (default namespaces, the kubernetes
// Service), makes /readyz pass and starts the allocation repair loop;
// Close stops it.
type Server struct {
	cfg       Config
	log       *slog.Logger
	store     storage.Interface
	scheme    *runtime.Scheme
	proto     *protobuf.Serializer
	resources *resourceIndex
	metrics   *metrics
	engine    *gin.Engine
	alloc     *allocator

	repair repairState
	// nsRevs spares creates the read of their namespace (namespace.go).
	nsRevs nsRevisions
	// hostname names this server in the events it records.
	hostname string

	ready atomic.Bool
	// inflight holds a token for each request being served.
	inflight chan struct{}
	// stop ends every watch when the server shuts down.
	stop     chan struct{}
	stopOnce sync.Once
}

// New builds a Server from cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("apiserver: no store")
	}
	if len(cfg.Resources) == 0 {
		return nil, errors.New("apiserver: no resources")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ServiceCIDR == nil {
		_, cidr, _ := net.ParseCIDR("10.96.0.0/12")
		cfg.ServiceCIDR = cidr
	}
	if cfg.NodePortBase == 0 {
		cfg.NodePortBase, cfg.NodePortSize = 30000, 2768
	}
	if cfg.SecurePort == 0 {
		cfg.SecurePort = 6443
	}
	if cfg.MaxRequestsInFlight == 0 {
		cfg.MaxRequestsInFlight = 400
	}
	if cfg.BookmarkInterval == 0 {
		cfg.BookmarkInterval = time.Minute
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.RepairInterval == 0 {
		cfg.RepairInterval = DefaultRepairInterval
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.Log.With("component", "apiserver"),
		store: cfg.Store,
		stop:  make(chan struct{}),

		inflight: make(chan struct{}, cfg.MaxRequestsInFlight),
	}
	if s.hostname, _ = os.Hostname(); s.hostname == "" {
		s.hostname = "skiff"
	}
	var err error
	if s.metrics, err = newMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	s.store = timedStore{Interface: cfg.Store, h: s.metrics.etcd}
	if s.scheme, err = newScheme(cfg.Resources); err != nil {
		return nil, fmt.Errorf("apiserver: scheme: %w", err)
	}
	s.proto = protobuf.NewSerializer(s.scheme, s.scheme)
	tc := cfg.TypeConverter
	if tc == nil {
		tc = managedfields.NewDeducedTypeConverter()
	}
	if s.resources, err = newResourceIndex(cfg.Resources, s.scheme, tc); err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	for _, r := range s.resources.all {
		s.metrics.watches.WithLabelValues(r.Name).Add(0)
	}
	if s.alloc, err = newAllocator(cfg.ServiceCIDR, cfg.NodePortBase, cfg.NodePortSize); err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	s.engine = s.routes()
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

// Ready reports whether Bootstrap has completed.
func (s *Server) Ready() bool { return s.ready.Load() }

// Close ends every open watch and background loop (and waits for the
// allocation repair to finish its pass). The HTTP server that uses
// Handler should be shut down after it.
func (s *Server) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.stopRepair()
}

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = false
	e.UseRawPath = true
	e.Use(s.recoverer(), s.authenticate(), s.limitInFlight())

	e.GET("/healthz", s.healthz)
	e.GET("/livez", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/version", s.version)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{})))
	if s.cfg.OpenAPI != nil {
		s.cfg.OpenAPI.Register(e)
	}
	// Profiling, as kube-apiserver's --profiling (authenticated).
	e.GET("/debug/pprof/", gin.WrapF(pprof.Index))
	e.GET("/debug/pprof/cmdline", gin.WrapF(pprof.Cmdline))
	e.GET("/debug/pprof/profile", gin.WrapF(pprof.Profile))
	e.GET("/debug/pprof/symbol", gin.WrapF(pprof.Symbol))
	e.GET("/debug/pprof/trace", gin.WrapF(pprof.Trace))
	e.GET("/debug/pprof/:name", gin.WrapF(pprof.Index))
	e.NoRoute(s.serveAPI)
	return e
}

func (s *Server) recoverer() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(logKey, s.log)
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "method", c.Request.Method, "path", c.Request.URL.Path, "panic", v, "stack", stack())
				if !c.Writer.Written() {
					writeError(c, internalError(fmt.Errorf("panic: %v", v)))
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}

var publicPaths = map[string]bool{"/healthz": true, "/livez": true, "/readyz": true, "/version": true}

func (s *Server) authenticate() gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.cfg.Authenticate == nil || publicPaths[c.Request.URL.Path] {
			c.Next()
			return
		}
		if !s.cfg.Authenticate(c.Request) {
			writeError(c, unauthorized())
			c.Abort()
			return
		}
		c.Next()
	}
}

// limitInFlight answers 429 when MaxRequestsInFlight requests are being
// served. Watches, which last, and health checks are not counted.
func (s *Server) limitInFlight() gin.HandlerFunc {
	return func(c *gin.Context) {
		q := c.Request.URL.Query()
		if publicPaths[c.Request.URL.Path] || q.Get("watch") == "1" || q.Get("watch") == "true" ||
			strings.Contains(c.Request.URL.Path, "/watch/") {
			c.Next()
			return
		}
		select {
		case s.inflight <- struct{}{}:
			defer func() { <-s.inflight }()
			c.Next()
		default:
			c.Header("Retry-After", "1")
			writeError(c, apierrors.NewTooManyRequests("too many requests, please try again later", 1))
			c.Abort()
		}
	}
}

func (s *Server) healthz(c *gin.Context) {
	c.Header("Content-Type", "text/plain; charset=utf-8")
	c.Header("X-Content-Type-Options", "nosniff")
	c.String(http.StatusOK, "ok")
}

func (s *Server) readyz(c *gin.Context) {
	c.Header("Content-Type", "text/plain; charset=utf-8")
	c.Header("X-Content-Type-Options", "nosniff")
	if !s.ready.Load() {
		c.String(http.StatusServiceUnavailable, "[-]bootstrap failed: not finished\nreadyz check failed")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.store.Revision(ctx); err != nil {
		c.String(http.StatusServiceUnavailable, "[-]etcd failed: %v\nreadyz check failed", err)
		return
	}
	c.String(http.StatusOK, "ok")
}
