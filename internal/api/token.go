package api

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// The control plane's API asks the CLI for a bearer token (the
// control package makes it on first start). The CLI finds it, for the
// control plane at an address, in WEFT_TOKEN, or in the file the control
// plane wrote for its local user (TokenPath).

// TokenEnv names the environment variable that gives the API token.
const TokenEnv = "WEFT_TOKEN"

// TokenPath is the file, for the local user, that holds the API token of
// the control plane at addr (host:port): <user config dir>/weft/tokens/
// <host>_<port> ($XDG_CONFIG_HOME, or ~/.config, on Linux).
func TokenPath(addr string) (string, error) { return userFile(addr, "tokens", "") }

// userFile is the local user's file of kind for the control plane at
// addr (host:port or a URL): <user config dir>/weft/<kind>/<host>_<port><ext>.
func userFile(addr, kind, ext string) (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("the user's config directory: %w", err)
	}
	host, port, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://"))
	if err != nil {
		return "", fmt.Errorf("control plane address %q: want host:port", addr)
	}
	return filepath.Join(dir, "weft", kind, host+"_"+port+ext), nil
}

// LoadToken is the API token to send to the control plane at addr:
// WEFT_TOKEN, else the token file of that address ("" when there is
// none: the control plane will say 401).
func LoadToken(addr string) string {
	if t := os.Getenv(TokenEnv); t != "" {
		return strings.TrimSpace(t)
	}
	path, err := TokenPath(addr)
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// SaveToken writes token to the local user's file for the control plane
// at addr, readable by that user only (0600, in a 0700 directory).
func SaveToken(addr, token string) (string, error) {
	path, err := TokenPath(addr)
	if err != nil {
		return "", err
	}
	return path, writeUserFile(path, []byte(token+"\n"), 0o600, "the API token")
}

// writeUserFile replaces path with data (mode perm, in a 0700
// directory), all at once.
func writeUserFile(path string, data []byte, perm os.FileMode, what string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("saving %s: %w", what, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("saving %s: %w", what, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return errors.Join(fmt.Errorf("saving %s to %s", what, path), err)
	}
	return nil
}
