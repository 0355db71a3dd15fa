// Package component gives the roles of the skiff binary (server, agent) one
// lifecycle for their parts: every part is initialised, then started in the
// order it was added, and stopped in reverse order. A part that fails to
// start makes the manager stop the parts already started, so a failed start
// leaves nothing running behind it.
package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Component is one part of a role: the API server, the scheduler, a
// controller, the node agent's proxy.
//
// Init validates configuration and allocates what Start needs; it starts no
// goroutines and binds no ports. Start brings the part up and returns once it
// serves (or fails); work it keeps doing runs in goroutines that end when
// Stop is called or ctx ends. Stop releases everything Start acquired and is
// safe to call after a failed or partial Start.
type Component interface {
	Name() string
	Init(ctx context.Context) error
	Start(ctx context.Context) error
	Stop() error
}

// Manager runs components in order.
type Manager struct {
	log        *slog.Logger
	components []Component
	started    []Component
}

// NewManager returns an empty Manager that logs to log.
func NewManager(log *slog.Logger) *Manager {
	return &Manager{log: log}
}

// Add appends c; components start in the order they are added.
func (m *Manager) Add(c ...Component) {
	m.components = append(m.components, c...)
}

// Init initialises every component in order and stops at the first error.
func (m *Manager) Init(ctx context.Context) error {
	for _, c := range m.components {
		if err := c.Init(ctx); err != nil {
			return fmt.Errorf("init %s: %w", c.Name(), err)
		}
	}
	return nil
}

// Start starts every component in order. When one fails, the components
// already started are stopped in reverse order and the start error is
// returned joined with any stop errors.
func (m *Manager) Start(ctx context.Context) error {
	for _, c := range m.components {
		m.log.Info("starting component", "component", c.Name())
		if err := c.Start(ctx); err != nil {
			err = fmt.Errorf("start %s: %w", c.Name(), err)
			// Stop the failed component too: Start may have acquired part of
			// what it needs before failing.
			m.started = append(m.started, c)
			return errors.Join(err, m.Stop())
		}
		m.started = append(m.started, c)
	}
	return nil
}

// Stop stops the started components in reverse order. It stops all of them
// even when some fail, and returns the joined errors.
func (m *Manager) Stop() error {
	var errs []error
	for i := len(m.started) - 1; i >= 0; i-- {
		c := m.started[i]
		m.log.Info("stopping component", "component", c.Name())
		if err := c.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", c.Name(), err))
		}
	}
	m.started = nil
	return errors.Join(errs...)
}
