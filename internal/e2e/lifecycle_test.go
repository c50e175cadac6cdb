package e2e

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// pipeReader reads a pipe into memory until it is closed, like the `tee`
// in `weft run ... 2>&1 | tee log`.
type pipeReader struct {
	f    *os.File
	mu   sync.Mutex
	buf  strings.Builder
	done chan struct{}
}

func readPipe(f *os.File) *pipeReader {
	p := &pipeReader{f: f, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			p.mu.Lock()
			p.buf.Write(b[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return p
}

func (p *pipeReader) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// close ends the reader, as Ctrl-C ends tee before weft run.
func (p *pipeReader) close() {
	p.f.Close()
	<-p.done
}

var adminRE = regexp.MustCompile(`msg="sidecar started".* admin=(\S+)`)

// Under `weft run ... | tee`, Ctrl-C ends tee first: weft run's next log
// line goes to a pipe with no reader. It must still deregister, drain and
// exit on its own terms, not die of SIGPIPE with its records left behind.
// And at start it must not say the app is down before the app had time to
// listen.
func TestWeftRunSurvivesItsReaderGoingFirst(t *testing.T) {
	m := meshtest.New(t)
	cp := m.Control()
	port := freePort(t)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// A long lease: if the records go, it is because weft run removed them.
	cmd := exec.Command(m.Bins.Weft, "run", "--control", cp.Addr,
		"--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--service", "piped", "--id", "piped-1", "--app-port", port, "--lease-ttl", "60s",
		"--", m.Bins.TestApp, "--listen", "127.0.0.1:"+port)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	out := readPipe(r)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var waitErr error
	var gone bool
	t.Cleanup(func() {
		if !gone {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("--- output of weft run (until its reader closed) ---\n%s", out.String())
		}
	})

	var admin string
	m.Eventually(30*time.Second, func() (bool, string) {
		if g := adminRE.FindStringSubmatch(out.String()); g != nil {
			admin = g[1]
		}
		return admin != "", out.String()
	})
	m.Eventually(30*time.Second, func() (bool, string) {
		code, body := meshtest.Get("http://" + admin + "/readyz")
		return code == 200, body
	})
	for _, what := range []string{"instances", "proxies"} {
		if o, _, _ := m.Weft("get", what, "piped", "--control", cp.Addr); !strings.Contains(o, "piped-1") {
			t.Fatalf("get %s piped before the stop: got %q, want piped-1", what, o)
		}
	}
	if strings.Contains(out.String(), "app is down") {
		t.Errorf("weft run said the app is down while it was starting:\n%s", out.String())
	}

	out.close()
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case waitErr = <-exited:
		gone = true
	case <-time.After(30 * time.Second):
		t.Fatal("weft run did not exit within 30s of SIGINT")
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("weft run: got killed by %v, want a clean exit after deregistering", ws.Signal())
	}
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		t.Fatalf("wait: %v", waitErr)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("weft run exit code: got %d, want 0", code)
	}
	for _, what := range []string{"instances", "proxies"} {
		if o, _, _ := m.Weft("get", what, "--control", cp.Addr); strings.Contains(o, "piped-1") {
			t.Errorf("get %s after the stop: got %q, want piped-1 deregistered", what, o)
		}
	}
}
