//go:build linux || darwin

package faults

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// kvdBinaryEnv names a prebuilt kvd binary for the tests that run the real
// program (to check an older build, for instance); by default they build
// cmd/kvd from this repository.
const kvdBinaryEnv = "KVD_TEST_BINARY"

var (
	kvdBuildOnce sync.Once
	kvdBin       string
	kvdBuildErr  error
	kvdBuildDir  string
)

// kvdBinary returns the path of a kvd binary, building cmd/kvd once per
// test run.
func kvdBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(kvdBinaryEnv); p != "" {
		return p
	}
	kvdBuildOnce.Do(func() {
		kvdBuildDir, kvdBuildErr = os.MkdirTemp("", "kvd-faults-")
		if kvdBuildErr != nil {
			return
		}
		kvdBin = filepath.Join(kvdBuildDir, "kvd")
		out, err := exec.Command("go", "build", "-o", kvdBin, "github.com/kvd-dev/kvstore/cmd/kvd").CombinedOutput()
		if err != nil {
			kvdBuildErr = err
			kvdBin = string(out)
		}
	})
	if kvdBuildErr != nil {
		t.Fatalf("building cmd/kvd: %v\n%s", kvdBuildErr, kvdBin)
	}
	return kvdBin
}

// kvdProcess is a running kvd.
type kvdProcess struct {
	cmd    *exec.Cmd
	addr   string
	stderr *lockedBuffer
	exited chan struct{}
	err    error // the result of Wait, once exited is closed
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listeningRE = regexp.MustCompile(`kvd listening"? addr=(\S+)`)

// startKVD starts kvd on a loopback port with the extra flags, and waits
// until it listens. The process is killed at the end of the test if it is
// still running.
func startKVD(t *testing.T, flags ...string) *kvdProcess {
	t.Helper()
	bin := kvdBinary(t)
	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, flags...)...)
	pr, pw := io.Pipe()
	p := &kvdProcess{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = io.MultiWriter(p.stderr, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case p.addr = <-found:
	case <-p.exited:
		t.Fatalf("kvd exited before listening: %v\n%s", p.err, p.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("kvd did not listen within 30s:\n%s", p.stderr)
	}
	return p
}

// TestKVDExitsPromptlyOnSIGTERM: the real kvd binary, sent SIGTERM while
// clients that never read wait for megabytes of responses, eight clients
// keep pipelining (and reading), and a transaction is open, exits with
// status 0 within 2 s (docs/PROTOCOL.md, "Shutdown"; the assertion is looser, for
// loaded machines, and the measured time is logged). Both backends.
func TestKVDExitsPromptlyOnSIGTERM(t *testing.T) {
	for _, b := range []struct{ name, loops string }{{"goroutines", "0"}, {"event-loops", "-1"}} {
		t.Run(b.name, func(t *testing.T) {
			p := startKVD(t, "-event-loops", b.loops)
			setup := dial(t, p.addr)
			if err := setup.Put("big", strings.Repeat("x", 512<<10)); err != nil {
				t.Fatal(err)
			}
			txn := dial(t, p.addr)
			mustDo(t, txn, "START")
			mustDo(t, txn, "PUT intxn 1")

			var wg sync.WaitGroup
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
				wg.Wait()
			}()
			// Four clients that ask for 64 MiB each and never read.
			for range 4 {
				c, err := net.Dial("tcp", p.addr)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				wg.Add(1)
				go func() {
					defer wg.Done()
					c.Write([]byte(strings.Repeat("GET big\n", 128)))
				}()
			}
			// Eight clients that keep pipelining PUTs, reading the answers.
			responses := make([]int, 8)
			for i := range 8 {
				c, err := net.Dial("tcp", p.addr)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				wg.Add(2)
				go func() {
					defer wg.Done()
					batch := []byte(strings.Repeat("PUT p v\n", 200))
					for {
						if _, err := c.Write(batch); err != nil {
							return
						}
					}
				}()
				go func() {
					defer wg.Done()
					br := bufio.NewReaderSize(c, 64<<10)
					for {
						if _, err := br.ReadSlice('\n'); err != nil {
							return
						}
						responses[i]++
					}
				}()
			}
			time.Sleep(500 * time.Millisecond)

			start := time.Now()
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("kvd still running 30s after SIGTERM:\n%s", p.stderr)
			}
			took := time.Since(start)
			t.Logf("kvd exited %v after SIGTERM: %v", took.Round(time.Millisecond), p.err)
			if p.err != nil {
				t.Errorf("kvd exit: %v, want status 0\n%s", p.err, p.stderr)
			}
			if took > 4*time.Second {
				t.Errorf("kvd took %v to exit after SIGTERM; the contract says 2 s", took)
			}
			// The transaction client is told nothing more: its connection ends.
			if r, err := txn.Recv(); err == nil {
				t.Errorf("transaction client got %v after shutdown, want the connection closed", r)
			}
		})
	}
}
