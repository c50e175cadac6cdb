package registry

import (
	"bytes"
	"fmt"
	"strconv"
)

// LeaseID is the etcd lease a sidecar's records are attached to.
//
// In JSON it is a decimal string, as etcd's own JSON gateway writes 64-bit
// integers: JavaScript, jq and most JSON tools read numbers as doubles and
// would round a lease id above 2^53 to a different lease. A plain number is
// accepted too, so records written before this change still read.
type LeaseID int64

// String is the decimal id, as used in /v1/leases/{id}/keepalive.
func (l LeaseID) String() string { return strconv.FormatInt(int64(l), 10) }

// MarshalJSON writes the id as a decimal string.
func (l LeaseID) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, l.String()), nil
}

// UnmarshalJSON reads a decimal string, a number, or null (0).
func (l *LeaseID) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*l = 0
		return nil
	}
	s := string(b)
	if len(b) >= 2 && b[0] == '"' {
		var err error
		if s, err = strconv.Unquote(s); err != nil {
			return fmt.Errorf("lease %s: %w", b, err)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("lease %s: want a decimal integer", b)
	}
	*l = LeaseID(n)
	return nil
}
