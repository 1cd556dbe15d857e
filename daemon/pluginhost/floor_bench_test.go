package pluginhost

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// floorServerEnv makes the test binary a bare gRPC server (see
// runFloorServer): the other end of BenchmarkGRPCFloor.
const floorServerEnv = "ACQUIT_GRPC_FLOOR_SERVER"

// runFloorServer serves only gRPC's own health service on the unix socket
// named by floorServerEnv, on one OS thread (as a plugin with max_procs 1),
// with TLS when the certificate and key PEM files follow the socket path.
func runFloorServer() {
	runtime.GOMAXPROCS(1)
	args := filepath.SplitList(os.Getenv(floorServerEnv))
	raw := strings.HasPrefix(args[0], "echo=")
	args[0] = strings.TrimPrefix(args[0], "echo=")
	lis, err := net.Listen("unix", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if raw {
		echoFloor(lis)
		return
	}
	var opts []grpc.ServerOption
	if len(args) == 3 {
		cert, err := tls.LoadX509KeyPair(args[1], args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})))
	}
	s := grpc.NewServer(opts...)
	grpc_health_v1.RegisterHealthServer(s, health.NewServer())
	_ = s.Serve(lis)
}

// BenchmarkGRPCFloor measures what the plugin RPC benchmarks are bounded
// by on this machine: a bare gRPC unary call (gRPC's own health Check,
// nothing of acquit or go-plugin on either side) from this process to a
// second process over a unix socket, plaintext and over TLS 1.3, with the
// same grpc-go. Reported like BenchmarkPluginRPCHealth: median round trip
// and CPU of both processes per call.
func BenchmarkGRPCFloor(b *testing.B) {
	for _, mode := range []string{"plaintext", "tls"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			sock := filepath.Join(dir, "s")
			env := sock
			var creds credentials.TransportCredentials = insecure.NewCredentials()
			if mode == "tls" {
				certPEM, keyPEM, pool := floorCert(b)
				cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
				if err := os.WriteFile(cf, certPEM, 0o600); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(kf, keyPEM, 0o600); err != nil {
					b.Fatal(err)
				}
				env = sock + string(filepath.ListSeparator) + cf + string(filepath.ListSeparator) + kf
				creds = credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "floor", MinVersion: tls.VersionTLS13})
			}
			pid := startFloorServer(b, env)
			conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(creds))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			hc := grpc_health_v1.NewHealthClient(conn)
			ctx := context.Background()
			deadline := time.Now().Add(10 * time.Second)
			for {
				if _, err = hc.Check(ctx, &grpc_health_v1.HealthCheckRequest{}); err == nil {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("floor server not answering: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			cpu := pidCPU(b, pid)
			lat := make([]time.Duration, 0, 1024)
			for b.Loop() {
				t0 := time.Now()
				if _, err := hc.Check(ctx, &grpc_health_v1.HealthCheckRequest{}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			cpu()
			reportP50(b, lat)
		})
	}
}

// echoFloor answers each 16-byte message on each connection with the same
// 16 bytes: the socket round trip between two Go processes, without gRPC.
func echoFloor(lis net.Listener) {
	for {
		c, err := lis.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var b [16]byte
			for {
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return
				}
				if _, err := c.Write(b[:]); err != nil {
					return
				}
			}
		}()
	}
}

// BenchmarkSocketFloor is under BenchmarkGRPCFloor: a 16-byte message sent
// to a second process over a unix socket and read back, with no gRPC, no
// HTTP/2 and no TLS (the other process is the test binary re-executed,
// GOMAXPROCS 1, as for BenchmarkGRPCFloor). What is left is the kernel,
// the VM's wake-ups and the Go runtime's netpoller on both sides: the
// part of a plugin call that no RPC library can remove.
func BenchmarkSocketFloor(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "s")
	pid := startFloorServer(b, "echo="+sock)
	var c net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err = net.Dial("unix", sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("echo process not listening: %v", err)
		}
	}
	defer c.Close()
	var msg, got [16]byte
	copy(msg[:], "acquit-ping-0123")
	cpu := pidCPU(b, pid)
	lat := make([]time.Duration, 0, 1024)
	for b.Loop() {
		t0 := time.Now()
		if _, err := c.Write(msg[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got[:]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		if got != msg {
			b.Fatalf("echo %q, sent %q", got, msg)
		}
	}
	cpu()
	reportP50(b, lat)
}

// floorCert makes a self-signed P-256 server certificate for "floor".
func floorCert(b *testing.B) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "floor"}, DNSNames: []string{"floor"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pool
}

// startFloorServer re-executes the test binary as the floor benchmarks'
// second process, told what to serve by env (floorServerEnv); it is
// killed when b ends. It returns the process id.
func startFloorServer(b *testing.B, env string) int {
	b.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), floorServerEnv+"="+env)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}
