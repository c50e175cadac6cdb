package config

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Labels follow Kubernetes' rules, so that label selectors and habits carry
// over: a key is an optional DNS-subdomain prefix and '/', then a name of 1
// to 63 characters; a value is empty or 1 to 63 characters. Names and
// values are letters, digits, '-', '_' and '.', starting and ending with a
// letter or digit.
var (
	labelNameRE   = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	labelPrefixRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

const (
	labelNameMax   = 63
	labelPrefixMax = 253
	nameRule       = "1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
)

// LabelKeyError says what is wrong with a label key, or returns "".
func LabelKeyError(k string) string {
	name := k
	if prefix, rest, ok := strings.Cut(k, "/"); ok {
		name = rest
		switch {
		case prefix == "":
			return "prefix before '/' is empty"
		case len(prefix) > labelPrefixMax:
			return fmt.Sprintf("prefix is %d characters, at most %d", len(prefix), labelPrefixMax)
		case !labelPrefixRE.MatchString(prefix):
			return fmt.Sprintf("prefix %q must be a DNS subdomain (lower-case letters, digits, '-' and '.')", prefix)
		}
	}
	if len(name) > labelNameMax || !labelNameRE.MatchString(name) {
		return fmt.Sprintf("name %q must be %s", name, nameRule)
	}
	return ""
}

// LabelValueError says what is wrong with a label value, or returns "".
func LabelValueError(v string) string {
	if v == "" {
		return ""
	}
	if len(v) > labelNameMax || !labelNameRE.MatchString(v) {
		return "must be empty or " + nameRule
	}
	return ""
}

// validateLabels checks every label of m, in key order so that the error
// is the same each time; path is where m is, e.g. metadata.labels.
func validateLabels(path string, m map[string]string) *FieldError {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		at := fmt.Sprintf("%s[%q]", path, k)
		if msg := LabelKeyError(k); msg != "" {
			return &FieldError{Field: path, Msg: fmt.Sprintf("key %q: %s", k, msg), at: at}
		}
		if msg := LabelValueError(m[k]); msg != "" {
			return &FieldError{Field: path, Msg: fmt.Sprintf("value %q of %q: %s", m[k], k, msg), at: at}
		}
	}
	return nil
}
