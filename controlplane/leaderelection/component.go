package leaderelection

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/skiff-project/skiff/tools/skiff/component"
)

// RunFunc is one piece of leader-only work, such as the controller manager's
// or the scheduler's Run. It must return soon after ctx is cancelled.
type RunFunc func(ctx context.Context) error

// Component is a component.Component that runs a set of RunFuncs together
// while this process leads the Lease of its Config. When any of them returns
// during a term (with an error or not), the others are cancelled and the
// term ends: the lease is released and the component campaigns again, so a
// replica whose work failed hands over to another.
type Component struct {
	name string
	cfg  Config
	runs []RunFunc

	leading atomic.Bool

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

var _ component.Component = (*Component)(nil)

// NewComponent returns a component named name that runs runs under leader
// election with cfg.
func NewComponent(name string, cfg Config, runs ...RunFunc) *Component {
	return &Component{name: name, cfg: cfg, runs: runs}
}

// Name implements component.Component.
func (c *Component) Name() string { return c.name }

// Init validates the configuration.
func (c *Component) Init(context.Context) error {
	if len(c.runs) == 0 {
		return errors.New("leader election component: nothing to run")
	}
	return c.cfg.complete()
}

// Leading reports whether the component is running its work now.
func (c *Component) Leading() bool { return c.leading.Load() }

// Identity is the holder identity this component campaigns with (set after
// Init).
func (c *Component) Identity() string { return c.cfg.Identity }

// Start begins campaigning in the background and returns at once: a replica
// that is not leader is up and healthy too.
func (c *Component) Start(ctx context.Context) error {
	if err := c.cfg.complete(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return errors.New("leader election component: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	c.cancel, c.done = cancel, make(chan struct{})
	log := c.cfg.Log.With("component", c.name)
	go func() {
		defer close(c.done)
		// Run only fails on an invalid config, which complete has checked.
		if err := Run(ctx, c.cfg, c.term(log)); err != nil {
			log.Error("leader election ended", "err", err)
		}
	}()
	return nil
}

// term returns the work of one leadership term: every RunFunc, until the
// first returns or ctx ends.
func (c *Component) term(log *slog.Logger) func(ctx context.Context) {
	return func(ctx context.Context) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		c.leading.Store(true)
		defer c.leading.Store(false)
		var wg sync.WaitGroup
		for i, run := range c.runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cancel()
				err := run(ctx)
				switch {
				case err != nil:
					log.Error("leader work failed; ending the term", "run", i, "err", err)
				case ctx.Err() == nil:
					log.Info("leader work returned; ending the term", "run", i)
				}
			}()
		}
		wg.Wait()
	}
}

// Stop ends the term if leading, waits for the work, releases the lease and
// stops campaigning. It is safe to call more than once and without Start.
func (c *Component) Stop() error {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.cancel, c.done = nil, nil
	c.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return nil
}
