package lb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-project/skiff/dataplane/testbed"
)

// The new-connection latency measurement uses blocking system calls on
// dedicated OS threads, one per network namespace, on both ends: the
// client makes its connections one after another on one locked thread,
// and each pod's echo server accepts and answers one connection at a time
// on its own. Per connection there is no goroutine or thread hand-off, no
// netpoller wake-up and no allocation, so the tail of the distribution is
// the kernel's path (socket hooks, TC, XDP, conntrack, routing) and CPU
// scheduling, not the harness. Both ends run at a raised priority (nice
// -20 by default) so that other work on a shared machine disturbs the
// tail less; that favours every mode alike.

// probeTimeout bounds each blocking call of a connection.
const probeTimeout = 2 * time.Second

var request = []byte("ping\n")

// echoServer is a TCP server on a locked thread in a pod's namespace:
// accept, read one line, answer "<id>\n", wait for the client to close,
// close. The client closes first, so TIME_WAIT stays on the client, keyed
// by the address it connected to; a server that closed first would keep
// TIME_WAIT entries that a later point's connections (another mode picks
// other source ports and timestamps for the same backend) run into: the
// SYN is answered with an ACK, reset, and retried about 15 ms later.
type echoServer struct {
	id      string
	fd      int // listening socket
	closing atomic.Bool
	done    chan error
}

// startEcho starts an echo server on port in the namespace at nsPath, on
// a thread with the given nice value.
func startEcho(nsPath, id string, port uint16, nice int) (*echoServer, error) {
	s := &echoServer{id: id, fd: -1, done: make(chan error, 1)}
	ready := make(chan error, 1)
	go func() {
		s.done <- testbed.Do(nsPath, func() error {
			if err := setNice(nice); err != nil {
				ready <- err
				return nil
			}
			fd, err := listenTCP(port)
			if err != nil {
				ready <- err
				return nil
			}
			s.fd = fd
			ready <- nil
			return s.serve(fd)
		})
	}()
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("echo server %s on port %d: %w", id, port, err)
	}
	return s, nil
}

func listenTCP(port uint16) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	// The client sends its request right behind the handshake's last
	// ACK, often from another CPU. A data segment that arrives while that
	// ACK swaps the request socket for the child in the established hash
	// (inet_ehash_insert) can miss both in the lockless lookup and reach
	// the listener, which resets the connection: a few in 100,000
	// connections, in every mode, iptables included (docs/benchmarks.md).
	// With TCP_DEFER_ACCEPT the bare ACK creates no child; the request
	// segment does, alone, so there is nothing to race. The server
	// answers the same way; what the probe measures is unchanged.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TCP_DEFER_ACCEPT: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(port)}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(fd, 512); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen: %w", err)
	}
	return fd, nil
}

func (s *echoServer) serve(lfd int) error {
	reply := []byte(s.id + "\n")
	buf := make([]byte, 256)
	tv := unix.NsecToTimeval(probeTimeout.Nanoseconds())
	for {
		fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			return fmt.Errorf("echo server %s: accept: %w", s.id, err)
		}
		// A client that stops half way does not hold the server up for
		// longer than a probe timeout.
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
		if readLine(fd, buf) == nil && writeAll(fd, reply) == nil {
			waitEOF(fd, buf)
		}
		unix.Close(fd)
	}
}

// close stops the server: shutting the listening socket down wakes the
// blocked accept.
func (s *echoServer) close() error {
	s.closing.Store(true)
	unix.Shutdown(s.fd, unix.SHUT_RDWR)
	err := <-s.done
	unix.Close(s.fd)
	return err
}

// readLine reads until a newline (the peer's whole message), EOF or an
// error.
func readLine(fd int, buf []byte) error {
	n := 0
	for {
		m, err := unix.Read(fd, buf[n:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return fmt.Errorf("read: timed out after %v", probeTimeout)
		case err != nil:
			return fmt.Errorf("read: %w", err)
		case m == 0:
			return errors.New("read: connection closed before a full line")
		}
		if slices.Contains(buf[n:n+m], '\n') {
			return nil
		}
		n += m
		if n == len(buf) {
			return errors.New("read: line too long")
		}
	}
}

// waitEOF reads until the peer closes (or an error or timeout).
func waitEOF(fd int, buf []byte) {
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			return
		}
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		b = b[n:]
	}
	return nil
}

// probe makes warmup and then n sequential connections from the namespace
// at nsPath to dst (connect, request, reply, close) on one locked thread
// with the given nice value and returns the latency distribution of the
// measured ones.
func probe(ctx context.Context, nsPath string, dst netip.AddrPort, warmup, n, nice int) (Latency, error) {
	var l Latency
	times := make([]time.Duration, 0, n)
	var total time.Duration
	err := testbed.Do(nsPath, func() error {
		if err := setNice(nice); err != nil {
			return err
		}
		sa := &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())}
		buf := make([]byte, 256)
		for i := 0; i < warmup; i++ {
			connectOnce(sa, buf)
		}
		begin := time.Now()
		for i := 0; i < n; i++ {
			if i%64 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			start := time.Now()
			err := connectOnce(sa, buf)
			d := time.Since(start)
			if err != nil {
				l.Errors++
				if l.FirstError == "" {
					l.FirstError = err.Error()
				}
				continue
			}
			times = append(times, d)
		}
		total = time.Since(begin)
		return nil
	})
	if err != nil {
		return l, err
	}
	if len(times) == 0 {
		return l, nil
	}
	slices.Sort(times)
	l.Conns = len(times)
	l.P50US = us(times[len(times)/2])
	l.P99US = us(times[(len(times)*99)/100])
	l.ConnsPerSec = float64(len(times)) / total.Seconds()
	return l, nil
}

// setNice sets the calling thread's nice value (a per-thread attribute on
// Linux); 0 leaves it alone. The thread must be locked and discarded
// afterwards, as testbed.Do's are.
func setNice(nice int) error {
	if nice == 0 {
		return nil
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice); err != nil {
		return fmt.Errorf("set thread nice value %d: %w", nice, err)
	}
	return nil
}

// connectOnce is one measured connection with blocking calls.
func connectOnce(sa *unix.SockaddrInet4, buf []byte) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(probeTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fmt.Errorf("SO_SNDTIMEO: %w", err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	if err := connect(fd, sa); err != nil {
		return err
	}
	if err := writeAll(fd, request); err != nil {
		return err
	}
	return readLine(fd, buf)
}

// connect is a blocking connect; interrupted by a signal (it is not
// restarted when a send timeout is set), it waits for the handshake that
// goes on in the background.
func connect(fd int, sa unix.Sockaddr) error {
	err := unix.Connect(fd, sa)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINTR) {
		if errors.Is(err, unix.EINPROGRESS) || errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("connect: timed out after %v", probeTimeout)
		}
		return fmt.Errorf("connect: %w", err)
	}
	deadline := time.Now().Add(probeTimeout)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("connect: timed out after %v", probeTimeout)
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("connect: poll: %w", err)
		}
		if n == 0 {
			continue
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return fmt.Errorf("connect: SO_ERROR: %w", err)
		}
		if soErr != 0 {
			return fmt.Errorf("connect: %w", unix.Errno(soErr))
		}
		return nil
	}
}
