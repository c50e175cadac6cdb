package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/meshtest"
)

// The CLI with the token the control plane left for its user is served;
// without one (another user's config) or with a wrong one it gets 401
// with a message that says where the token is.
func TestCLINeedsTheAPIToken(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	if out, errOut, code := m.Weft("get", "services", "--control", cp.Addr); code != 0 {
		t.Fatalf("weft get services with the user's token: exit %d %s%s", code, out, errOut)
	}
	elsewhere := "XDG_CONFIG_HOME=" + t.TempDir() // a user the control plane left no token for
	for _, c := range []struct {
		name string
		env  []string
		says string
	}{
		{"no token", []string{elsewhere}, "needs its token"},
		{"a wrong token", []string{elsewhere, "WEFT_TOKEN=" + strings.Repeat("ab", 32)}, "wrong API token"},
	} {
		out, errOut, code := m.WeftEnv(c.env, "get", "services", "--control", cp.Addr)
		if code != 1 || !strings.Contains(errOut, c.says) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 saying %q", c.name, code, out, errOut, c.says)
		}
	}
	if out, errOut, code := m.WeftEnv([]string{elsewhere, "WEFT_TOKEN=" + readToken(t, cp)}, "get", "services", "--control", cp.Addr); code != 0 {
		t.Errorf("with WEFT_TOKEN from the data dir: exit %d %s%s, want 0", code, out, errOut)
	}
}

// readToken is the API token in cp's data dir.
func readToken(t *testing.T, cp *meshtest.Control) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cp.DataDir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
