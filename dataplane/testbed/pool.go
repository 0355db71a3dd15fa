package testbed

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"
)

// nsPool runs short functions (socket creation and connect) on OS threads
// that stay inside one network namespace, so a dial costs no thread
// creation: the new-connection latency a benchmark measures is the
// dataplane's, not the test bed's. Workers are started on demand, one per
// concurrent call, and kept until close.
type nsPool struct {
	path  string
	tasks chan func()
	quit  chan struct{}

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newNSPool(path string) *nsPool {
	return &nsPool{path: path, tasks: make(chan func()), quit: make(chan struct{})}
}

// run runs fn in the namespace and waits for it.
func (p *nsPool) run(fn func() error) error {
	errc := make(chan error, 1)
	task := func() { errc <- fn() }
	select {
	case p.tasks <- task: // an idle worker took it
		return <-errc
	default:
	}
	if err := p.start(task, errc); err != nil {
		return err
	}
	return <-errc
}

func (p *nsPool) start(first func(), errc chan error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("testbed: namespace %s closed", p.path)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		runtime.LockOSThread() // never unlocked: the thread dies with the worker
		h, err := netns.GetFromPath(p.path)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", p.path, err)
			return
		}
		err = netns.Set(h)
		h.Close()
		if err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", p.path, err)
			return
		}
		first()
		for {
			select {
			case fn := <-p.tasks:
				fn()
			case <-p.quit:
				return
			}
		}
	}()
	return nil
}

// close stops the workers (their threads leave the namespace by exiting).
func (p *nsPool) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.quit)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
