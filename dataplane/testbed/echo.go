package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// DefaultRequestTimeout bounds a request whose context has no deadline.
const DefaultRequestTimeout = 5 * time.Second

// Reply is an echo server's answer to one request.
type Reply struct {
	// Server is the answering server's id (a pod's name).
	Server string
	// Source is the client address the server saw: the client's own
	// address when the path preserved it, a node's address after SNAT.
	Source netip.AddrPort
}

// Server is a TCP or UDP echo server. Every request ("ping", a line for
// TCP, a datagram for UDP) gets the reply "<id> <client ip:port>".
type Server struct {
	ID      string
	Network string
	Port    uint16

	cluster *Cluster
	mu      sync.Mutex
	ln      net.Listener
	pc      net.PacketConn
	conns   map[net.Conn]struct{}
	done    chan struct{}
}

// Serve starts an echo server for network ("tcp" or "udp") on port in the
// pod's namespace, answering with the pod's name. Cluster.Close stops it.
func (p *Pod) Serve(network string, port uint16) (*Server, error) {
	return p.Node.cluster.Serve(p.NS, p.Name, network, port)
}

// Serve starts an echo server with the given id in any of the test bed's
// namespaces, on all its addresses. Cluster.Close stops it.
func (c *Cluster) Serve(ns *NetNS, id, network string, port uint16) (*Server, error) {
	s := &Server{ID: id, Network: network, Port: port, cluster: c, conns: make(map[net.Conn]struct{}), done: make(chan struct{})}
	addr := fmt.Sprintf("0.0.0.0:%d", port)
	err := ns.Do(func() error {
		var err error
		switch network {
		case "tcp":
			s.ln, err = net.Listen("tcp4", addr)
		case "udp":
			s.pc, err = net.ListenPacket("udp4", addr)
		default:
			err = fmt.Errorf("unknown network %q", network)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("testbed: serve %s/%d in %s: %w", network, port, ns.Name(), err)
	}
	if err := c.track(s); err != nil {
		s.Close()
		return nil, err
	}
	if s.ln != nil {
		go s.acceptLoop()
	} else {
		go s.packetLoop()
	}
	return s, nil
}

func (s *Server) reply(from netip.AddrPort) []byte {
	return []byte(s.ID + " " + from.String() + "\n")
}

func (s *Server) acceptLoop() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			conn.Close()
			return
		default:
		}
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		go s.serveConn(conn)
	}
}

func (s *Server) serveConn(conn net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	from := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
	r := bufio.NewReader(conn)
	for {
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		if _, err := conn.Write(s.reply(from)); err != nil {
			return
		}
	}
}

func (s *Server) packetLoop() {
	udp := s.pc.(*net.UDPConn)
	buf := make([]byte, 2048)
	for {
		_, from, err := udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ECONNREFUSED from an earlier reply's ICMP error
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		udp.WriteToUDPAddrPort(s.reply(from), from)
	}
}

// Close stops the server and closes its open connections.
func (s *Server) Close() error {
	s.cluster.untrack(s)
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return nil
	default:
	}
	close(s.done)
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	if s.pc != nil {
		err = s.pc.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	return err
}

// Conn is a client connection to an echo server; it stays open across
// requests (a long-lived TCP connection, or a connected UDP socket with a
// fixed source port).
type Conn struct {
	cluster *Cluster
	network string
	conn    net.Conn
	r       *bufio.Reader
	mu      sync.Mutex
}

// Dial opens a connection from namespace ns (a pod, a node host or the
// client) to dst. Cluster.Close closes it if the caller does not.
func (c *Cluster) Dial(ctx context.Context, ns *NetNS, network string, dst netip.AddrPort) (*Conn, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var conn net.Conn
	err := ns.workers().run(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network+"4", dst.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("testbed: dial %s %s from %s: %w", network, dst, ns.Name(), err)
	}
	cn := &Conn{cluster: c, network: network, conn: conn, r: bufio.NewReader(conn)}
	if err := c.track(cn); err != nil {
		conn.Close()
		return nil, err
	}
	return cn, nil
}

// Request sends one request over a new connection from ns to dst and
// returns the reply. A refused connection (TCP RST or ICMP unreachable,
// for UDP too) gives an error matching syscall.ECONNREFUSED; no answer
// gives os.ErrDeadlineExceeded or the context's error.
func (c *Cluster) Request(ctx context.Context, ns *NetNS, network string, dst netip.AddrPort) (Reply, error) {
	cn, err := c.Dial(ctx, ns, network, dst)
	if err != nil {
		return Reply{}, err
	}
	defer cn.Close()
	return cn.Request(ctx)
}

// LocalAddr is the connection's source address as the client sees it.
func (cn *Conn) LocalAddr() netip.AddrPort {
	switch a := cn.conn.LocalAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	return netip.AddrPort{}
}

// RemoteAddr is the connection's peer as the client sees it
// (getpeername): a Service address stays the Service address, whatever
// backend the load balancer chose.
func (cn *Conn) RemoteAddr() netip.AddrPort {
	switch a := cn.conn.RemoteAddr().(type) {
	case *net.TCPAddr:
		return netip.AddrPortFrom(a.AddrPort().Addr().Unmap(), a.AddrPort().Port())
	case *net.UDPAddr:
		return netip.AddrPortFrom(a.AddrPort().Addr().Unmap(), a.AddrPort().Port())
	}
	return netip.AddrPort{}
}

// Request sends one request on the connection and waits for the reply.
func (cn *Conn) Request(ctx context.Context) (Reply, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	cn.mu.Lock()
	defer cn.mu.Unlock()
	dl, _ := ctx.Deadline()
	if err := cn.conn.SetDeadline(dl); err != nil {
		return Reply{}, fmt.Errorf("testbed: set deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { cn.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := cn.conn.Write([]byte("ping\n")); err != nil {
		return Reply{}, fmt.Errorf("testbed: send to %s: %w", cn.conn.RemoteAddr(), err)
	}
	var line string
	if cn.network == "udp" {
		buf := make([]byte, 2048)
		n, err := cn.conn.Read(buf)
		if err != nil {
			return Reply{}, fmt.Errorf("testbed: receive from %s: %w", cn.conn.RemoteAddr(), err)
		}
		line = string(buf[:n])
	} else {
		var err error
		line, err = cn.r.ReadString('\n')
		if err != nil {
			return Reply{}, fmt.Errorf("testbed: receive from %s: %w", cn.conn.RemoteAddr(), err)
		}
	}
	return parseReply(line)
}

// PacketConn is an unconnected UDP socket in a namespace, as DNS clients
// use them: every request is a sendto() of its own, every reply comes
// from recvfrom() with the address it came from.
type PacketConn struct {
	cluster *Cluster
	conn    *net.UDPConn
	mu      sync.Mutex
}

// ListenUDP opens an unconnected UDP socket on an ephemeral port in ns.
// Cluster.Close closes it if the caller does not.
func (c *Cluster) ListenUDP(ns *NetNS) (*PacketConn, error) {
	var conn *net.UDPConn
	err := ns.workers().run(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("testbed: listen udp in %s: %w", ns.Name(), err)
	}
	pc := &PacketConn{cluster: c, conn: conn}
	if err := c.track(pc); err != nil {
		conn.Close()
		return nil, err
	}
	return pc, nil
}

// Request sends one datagram to dst and waits for the reply; from is the
// address recvfrom() reported for it.
func (pc *PacketConn) Request(ctx context.Context, dst netip.AddrPort) (r Reply, from netip.AddrPort, err error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	pc.mu.Lock()
	defer pc.mu.Unlock()
	dl, _ := ctx.Deadline()
	if err := pc.conn.SetDeadline(dl); err != nil {
		return Reply{}, from, fmt.Errorf("testbed: set deadline: %w", err)
	}
	if _, err := pc.conn.WriteToUDPAddrPort([]byte("ping\n"), dst); err != nil {
		return Reply{}, from, fmt.Errorf("testbed: send to %s: %w", dst, err)
	}
	buf := make([]byte, 2048)
	n, from, err := pc.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return Reply{}, from, fmt.Errorf("testbed: receive (sent to %s): %w", dst, err)
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	r, err = parseReply(string(buf[:n]))
	return r, from, err
}

// Close closes the socket.
func (pc *PacketConn) Close() error {
	pc.cluster.untrack(pc)
	return pc.conn.Close()
}

func parseReply(line string) (Reply, error) {
	id, src, ok := strings.Cut(strings.TrimSpace(line), " ")
	if !ok {
		return Reply{}, fmt.Errorf("testbed: malformed reply %q", line)
	}
	ap, err := netip.ParseAddrPort(src)
	if err != nil {
		return Reply{}, fmt.Errorf("testbed: malformed reply %q: %w", line, err)
	}
	return Reply{Server: id, Source: ap}, nil
}

// Close closes the connection.
func (cn *Conn) Close() error {
	cn.cluster.untrack(cn)
	return cn.conn.Close()
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultRequestTimeout)
}
