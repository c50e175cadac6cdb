package cli

import (
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	addr := startControl(t)
	out, errOut, err := weft(t, "token", "create", "--service", "web", "--ttl", "2h", "--control", addr)
	token := strings.TrimSpace(out)
	if err != nil || strings.Count(token, ".") != 1 || strings.Contains(out, " ") {
		t.Fatalf("token create: got %q, %v; want the token alone on stdout", out, err)
	}
	id, secret, _ := strings.Cut(token, ".")
	if !strings.Contains(errOut, "join token "+id+" for service/web") || !strings.Contains(errOut, "shown only now") || strings.Contains(errOut, secret) {
		t.Errorf("token create: stderr %q, want what the token is, without its secret", errOut)
	}
	if _, _, err := weft(t, "token", "create", "--mesh", "--control", addr); err != nil {
		t.Errorf("token create --mesh: %v", err)
	}
	list := mustWeft(t, "token", "list", "--control", addr)
	if !strings.Contains(list, id) || !strings.Contains(list, "service/web") || !strings.Contains(list, "mesh") || strings.Contains(list, secret) {
		t.Errorf("token list:\n%s\nwant both tokens, no secret", list)
	}
	if out := mustWeft(t, "token", "delete", id, "--control", addr); !strings.Contains(out, "deleted") {
		t.Errorf("token delete: %q", out)
	}
	if _, _, err := weft(t, "token", "delete", id, "--control", addr); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("token delete again: got %v, want not found", err)
	}
	for _, args := range [][]string{
		{"token"},
		{"token", "mint"},
		{"token", "create"},
		{"token", "create", "--service", "web", "--mesh"},
		{"token", "create", "--service", "web", "--ttl", "0s"},
		{"token", "delete"},
	} {
		if _, _, err := weft(t, append(args, "--control", addr)...); ExitCode(err) != 2 {
			t.Errorf("weft %s: got %v (exit %d), want a usage error", strings.Join(args, " "), err, ExitCode(err))
		}
	}
	if _, _, err := weft(t, "token", "create", "--service", "Not_Valid", "--control", addr); err == nil || !strings.Contains(err.Error(), "service: ") {
		t.Errorf("token create with a bad name: got %v, want the control plane's message naming service", err)
	}
}

func TestJoinTokenNotInHelp(t *testing.T) {
	t.Setenv("WEFT_JOIN_TOKEN", "0123456789ab.c2VjcmV0LWluLWVudg")
	_, errOut, _ := weft(t, "sidecar", "-h")
	if !strings.Contains(errOut, "-join-token") || strings.Contains(errOut, "c2VjcmV0LWluLWVudg") {
		t.Errorf("weft sidecar -h: want --join-token listed without the token of the environment:\n%s", errOut)
	}
}
