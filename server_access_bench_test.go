package kvstore

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
)

// BenchmarkServerAccess is BenchmarkServerPipelined's GET batch on three
// servers: plain, with a password (the client sends AUTH first), and TLS
// (served by the goroutine backend, as every TLS connection is).
func BenchmarkServerAccess(b *testing.B) {
	const reqLine = "GET user:12345\n"
	for _, bc := range []string{"plain", "auth", "tls"} {
		b.Run(bc, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			store := New()
			store.Put("user:12345", `{"name":"George"}`)
			var opts []Option
			var clientTLS *tls.Config
			switch bc {
			case "auth":
				opts = append(opts, WithPassword("bench password"))
			case "tls":
				pki := newTestPKI(b)
				opts = append(opts, WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{pki.server}}))
				clientTLS = &tls.Config{RootCAs: pki.pool}
			}
			srv := NewServer(store, opts...)
			go srv.Serve(context.Background(), ln)
			defer srv.Shutdown(context.Background())
			var c net.Conn
			if clientTLS != nil {
				c, err = tls.Dial("tcp", ln.Addr().String(), clientTLS)
			} else {
				c, err = net.Dial("tcp", ln.Addr().String())
			}
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReaderSize(c, 64<<10)
			if bc == "auth" {
				c.Write([]byte("AUTH bench password\n"))
				if line, _ := br.ReadString('\n'); line != "{\"status\":\"Ok\"}\n" {
					b.Fatalf("AUTH: %q", line)
				}
			}
			const batch = 100
			req := []byte(strings.Repeat(reqLine, batch))
			b.ReportAllocs()
			b.SetBytes(int64(len(reqLine)))
			n := 0
			for b.Loop() {
				if n%batch == 0 {
					if _, err := c.Write(req); err != nil {
						b.Fatal(err)
					}
				}
				line, err := br.ReadSlice('\n')
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 && !strings.HasPrefix(string(line), `{"status":"Ok","result"`) {
					b.Fatalf("response %q", line)
				}
				n++
			}
			for ; n%batch != 0; n++ {
				br.ReadSlice('\n')
			}
		})
	}
}
