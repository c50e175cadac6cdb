package request

import "testing"

func TestCookieValue(t *testing.T) {
	for _, c := range []struct{ field, name, want string }{
		{"session=abc", "session", "abc"},
		{"a=1; session=abc; b=2", "session", "abc"},
		{"a=1;session=abc", "session", "abc"},
		{`session="quoted"`, "session", "quoted"},
		{"xsession=no; session=yes", "session", "yes"},
		{"session=", "session", ""},
		{"a=1; b=2", "session", ""},
		{"", "session", ""},
		{"Session=upper", "session", ""}, // names are case-sensitive
	} {
		if got := string(CookieValue([]byte(c.field), c.name)); got != c.want {
			t.Errorf("CookieValue(%q, %q) = %q, want %q", c.field, c.name, got, c.want)
		}
	}
}
