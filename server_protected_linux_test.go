package kvstore

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// netnsPair is two network namespaces joined by a veth pair: 10.200.0.1
// in a, 10.200.0.2 in b. Nothing of it is in the host's namespace.
type netnsPair struct{ a, b string }

// newNetnsPair creates the namespaces (as root, with iproute2) and removes
// them at cleanup, on every path.
func newNetnsPair(t *testing.T) netnsPair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2's ip is needed (apt-get install -y iproute2): %v", err)
	}
	id := os.Getpid() % 100000
	p := netnsPair{a: fmt.Sprintf("kvdA%d", id), b: fmt.Sprintf("kvdB%d", id)}
	va, vb := fmt.Sprintf("kva%d", id), fmt.Sprintf("kvb%d", id)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", p.a).Run() // deletes the veth pair too
		exec.Command("ip", "netns", "del", p.b).Run()
	})
	run("netns", "add", p.a)
	run("netns", "add", p.b)
	run("link", "add", va, "netns", p.a, "type", "veth", "peer", "name", vb, "netns", p.b)
	run("-n", p.a, "addr", "add", "10.200.0.1/24", "dev", va)
	run("-n", p.b, "addr", "add", "10.200.0.2/24", "dev", vb)
	for _, ns := range []string{p.a, p.b} {
		run("-n", ns, "link", "set", "lo", "up")
	}
	run("-n", p.a, "link", "set", va, "up")
	run("-n", p.b, "link", "set", vb, "up")
	return p
}

// inNetns runs f on an OS thread that has entered network namespace ns.
// Sockets f creates belong to ns for their whole life. The thread is not
// unlocked, so the runtime discards it when f returns.
func inNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := syscall.Open("/var/run/netns/"+ns, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer syscall.Close(fd)
		nr, ok := map[string]uintptr{"amd64": 308, "arm64": 268, "386": 346, "riscv64": 268}[runtime.GOARCH]
		if !ok {
			errc <- fmt.Errorf("setns: system call number unknown on %s", runtime.GOARCH)
			return
		}
		if _, _, e := syscall.RawSyscall(nr, uintptr(fd), syscall.CLONE_NEWNET, 0); e != 0 {
			errc <- fmt.Errorf("setns %s: %w", ns, e)
			return
		}
		f()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestServerProtectedModeNetns serves on 10.200.0.1 in one namespace and
// connects from 10.200.0.2 in another, a real non-loopback client: with
// no password it is turned away with one protected-mode line; with
// protected mode off, or with a password, it is served.
func TestServerProtectedModeNetns(t *testing.T) {
	p := newNetnsPair(t)
	serve := func(opts ...Option) (*Server, string) {
		var ln net.Listener
		inNetns(t, p.a, func() {
			var err error
			if ln, err = net.Listen("tcp", "10.200.0.1:0"); err != nil {
				t.Error(err)
			}
		})
		if ln == nil {
			t.FailNow()
		}
		srv := NewServer(New(), opts...)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(context.Background(), ln) }()
		t.Cleanup(func() {
			srv.Shutdown(context.Background())
			<-done
		})
		return srv, ln.Addr().String()
	}
	dial := func(addr string) (net.Conn, *bufio.Reader) {
		var c net.Conn
		inNetns(t, p.b, func() {
			var err error
			if c, err = net.DialTimeout("tcp", addr, ioTimeout); err != nil {
				t.Error(err)
			}
		})
		if c == nil {
			t.FailNow()
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(ioTimeout))
		return c, bufio.NewReader(c)
	}
	req := func(c net.Conn, br *bufio.Reader, line string) string {
		t.Helper()
		if _, err := c.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return strings.TrimSuffix(resp, "\n")
	}

	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			_, addr := serve(b.opt)
			c, br := dial(addr)
			if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != "10.200.0.2" {
				t.Fatalf("client address %s, want 10.200.0.2", got)
			}
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("no protected-mode line: %v", err)
			}
			resp, err := ParseResponse([]byte(line))
			if err != nil || resp.Status != StatusError || !strings.HasPrefix(resp.Mesg, "protected mode") ||
				!strings.Contains(resp.Mesg, "-password-file") || !strings.Contains(resp.Mesg, "-protected-mode=false") {
				t.Fatalf("got %q (%v), want a protected mode error saying what to do", line, err)
			}
			if rest, err := br.ReadString('\n'); err == nil || rest != "" {
				t.Fatalf("after the protected-mode line: %q, %v; want EOF", rest, err)
			}

			_, addr = serve(b.opt, WithProtectedMode(false))
			c, br = dial(addr)
			if got := req(c, br, "PUT k v"); got != `{"status":"Ok"}` {
				t.Fatalf("protected mode off: PUT got %s", got)
			}

			_, addr = serve(b.opt, WithPassword("pw"))
			c, br = dial(addr)
			if got := req(c, br, "GET k"); !strings.Contains(got, "authentication required") {
				t.Fatalf("with a password: GET before AUTH got %s", got)
			}
			if got := req(c, br, "AUTH pw"); got != `{"status":"Ok"}` {
				t.Fatalf("AUTH got %s", got)
			}
			if got := req(c, br, "PING"); !strings.Contains(got, "PONG") {
				t.Fatalf("PING got %s", got)
			}
		})
	}
}
