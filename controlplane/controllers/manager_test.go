package controllers

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes/fake"
)

func TestIsEnabled(t *testing.T) {
	tests := []struct {
		name              string
		selection         []string
		controller        string
		disabledByDefault bool
		want              bool
	}{
		{"star enables", []string{"*"}, "replicaset", false, true},
		{"star skips disabled by default", []string{"*"}, "bootstrap", true, false},
		{"named enables disabled by default", []string{"*", "bootstrap"}, "bootstrap", true, true},
		{"minus disables", []string{"*", "-replicaset"}, "replicaset", false, false},
		{"first mention wins", []string{"-replicaset", "replicaset"}, "replicaset", false, false},
		{"no star no name", []string{"deployment"}, "replicaset", false, false},
		{"empty", nil, "replicaset", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsEnabled(tt.selection, tt.controller, tt.disabledByDefault); got != tt.want {
				t.Errorf("IsEnabled(%v, %q, %v) = %v, want %v", tt.selection, tt.controller, tt.disabledByDefault, got, tt.want)
			}
		})
	}
}

type fakeController struct {
	name    string
	runs    *atomic.Int32
	workers *atomic.Int32
	err     error
}

func (f *fakeController) Name() string { return f.name }
func (f *fakeController) Run(ctx context.Context, workers int) error {
	f.runs.Add(1)
	f.workers.Store(int32(workers))
	if f.err != nil {
		return f.err
	}
	<-ctx.Done()
	return nil
}

func registration(name string, runs, workers *atomic.Int32, err error, off bool) Registration {
	return Registration{
		Name:              name,
		DisabledByDefault: off,
		New: func(c *Context) (Controller, error) {
			if c.Client == nil || c.Informers == nil || c.Logger == nil || c.Metrics == nil {
				return nil, errors.New("incomplete context")
			}
			// Registering an informer must be possible before the start.
			c.Informers.Core().V1().Pods().Informer()
			c.Metrics.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "test_" + name + "_total"}))
			_ = c.EventRecorder(name)
			return &fakeController{name: name, runs: runs, workers: workers, err: err}, nil
		},
	}
}

func TestNewManagerSelection(t *testing.T) {
	var r, w atomic.Int32
	regs := []Registration{
		registration("a", &r, &w, nil, false),
		registration("b", &r, &w, nil, false),
		registration("c", &r, &w, nil, true),
	}
	tests := []struct {
		name      string
		selection []string
		want      []string
		wantErr   bool
	}{
		{"default", nil, []string{"a", "b"}, false},
		{"minus", []string{"*", "-a"}, []string{"b"}, false},
		{"explicit off-by-default", []string{"*", "c"}, []string{"a", "b", "c"}, false},
		{"only one", []string{"b"}, []string{"b"}, false},
		{"unknown", []string{"*", "nope"}, nil, true},
		{"unknown negated", []string{"-nope"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewManager(Config{Client: fake.NewClientset(), Controllers: tt.selection, Registrations: regs})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got no error, want one")
				}
				return
			}
			if err != nil {
				t.Fatalf("NewManager: %v", err)
			}
			if got := m.Enabled(); !slices.Equal(got, tt.want) {
				t.Errorf("got enabled %v, want %v", got, tt.want)
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestManagerStartStopRestart(t *testing.T) {
	var runs, workers atomic.Int32
	reg := prometheus.NewRegistry()
	m, err := NewManager(Config{
		Client:        fake.NewClientset(),
		Logger:        slog.New(slog.NewTextHandler(t.Output(), nil)),
		Metrics:       reg,
		Registrations: []Registration{registration("a", &runs, &workers, nil, false)},
		Options:       Options{Workers: map[string]int{"a": 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	// Two terms in a row with the same registry: metrics must be released
	// between them.
	for term := 1; term <= 2; term++ {
		if err := m.Start(ctx); err != nil {
			t.Fatalf("term %d: start: %v", term, err)
		}
		waitFor(t, "controller run", func() bool { return runs.Load() == int32(term) })
		if got := workers.Load(); got != 3 {
			t.Errorf("got %d workers, want 3", got)
		}
		if err := m.Stop(); err != nil {
			t.Fatalf("term %d: stop: %v", term, err)
		}
	}
	if err := m.Stop(); err != nil {
		t.Errorf("second stop: got %v, want nil", err)
	}
}

func TestManagerRunReturnsControllerError(t *testing.T) {
	var runs, workers atomic.Int32
	boom := errors.New("boom")
	m, err := NewManager(Config{
		Client: fake.NewClientset(),
		Registrations: []Registration{
			registration("ok", &runs, &workers, nil, false),
			registration("bad", &runs, &workers, boom, false),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := m.Run(ctx); !errors.Is(err, boom) {
		t.Errorf("got %v, want %v", err, boom)
	}
	if ctx.Err() != nil {
		t.Errorf("run ended by the timeout, want by the failing controller")
	}
}
