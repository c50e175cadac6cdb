// Package h1 reads and writes HTTP/1.1 message framing for a pass-through
// proxy: it parses a request or response head into fields it keeps in one
// reusable buffer, and copies bodies verbatim (a chunked body stays chunked,
// trailers included), so that forwarding a message allocates nothing once a
// connection is warm.
//
//	client bytes -> ReadRequestHead -> Head (fields as offsets into Head.buf)
//	             -> caller writes a new head, field by field, dropping some
//	             -> CopyFixed / CopyChunked / CopyUntilEOF move the body
//
// Parsing is strict where lenience lets requests be smuggled (RFC 9112
// §6.3, §11.2): both Content-Length and Transfer-Encoding, differing
// Content-Length values, line folding, whitespace before a colon, and
// control characters are all errors.
package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// MaxHeadBytes bounds a message head (start line and fields).
const MaxHeadBytes = 64 << 10

// Errors a caller turns into a status.
var (
	ErrHeadTooLarge = errors.New("message head larger than 64 KiB")
	ErrMalformed    = errors.New("malformed HTTP/1.1 message")
)

// MalformedError says what is wrong with a message.
type MalformedError struct{ Msg string }

func (e *MalformedError) Error() string { return "malformed HTTP/1.1 message: " + e.Msg }

// Is makes errors.Is(err, ErrMalformed) true.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

func malformed(msg string) error { return &MalformedError{msg} }

// span is a [start, end) range of Head.buf.
type span struct{ start, end int32 }

// Field is one header field, as offsets into the head's buffer.
type Field struct{ name, value span }

// Head is a parsed request or response head. Reuse one per connection:
// Reset keeps its buffers.
type Head struct {
	buf    []byte
	fields []Field

	// Start line. For a request: Method, Target, Proto. For a response:
	// Proto, Status, Reason.
	method, target, proto, reason span
	Status                        int
	Minor                         int // 1 for HTTP/1.1, 0 for HTTP/1.0

	// Framing and connection handling, derived from the fields.
	ContentLength  int64 // -1 when not given
	Chunked        bool
	Close          bool // the sender will close after this message
	KeepAlive      bool // HTTP/1.0 sender asked to keep the connection
	ExpectContinue bool
	TrailersOK     bool // TE: trailers
	host, upgrade  span
	connTokens     []span // field names listed in Connection
}

// Reset clears h for the next message, keeping its memory.
func (h *Head) Reset() {
	h.buf = h.buf[:0]
	h.fields = h.fields[:0]
	h.connTokens = h.connTokens[:0]
	h.method, h.target, h.proto, h.reason, h.host, h.upgrade = span{}, span{}, span{}, span{}, span{}, span{}
	h.Status, h.Minor = 0, 1
	h.ContentLength = -1
	h.Chunked, h.Close, h.KeepAlive, h.ExpectContinue, h.TrailersOK = false, false, false, false, false
}

func (h *Head) bytes(s span) []byte { return h.buf[s.start:s.end] }

// Method, Target, Proto, Reason, Host and Upgrade return parts of the head;
// the slices are valid until the next Reset.
func (h *Head) Method() []byte  { return h.bytes(h.method) }
func (h *Head) Target() []byte  { return h.bytes(h.target) }
func (h *Head) Proto() []byte   { return h.bytes(h.proto) }
func (h *Head) Reason() []byte  { return h.bytes(h.reason) }
func (h *Head) Host() []byte    { return h.bytes(h.host) }
func (h *Head) Upgrade() []byte { return h.bytes(h.upgrade) }

// NumFields is the number of header fields.
func (h *Head) NumFields() int { return len(h.fields) }

// FieldAt returns the name and value of field i.
func (h *Head) FieldAt(i int) (name, value []byte) {
	f := h.fields[i]
	return h.bytes(f.name), h.bytes(f.value)
}

// Get returns the first value of the named field (case-insensitive), or nil.
func (h *Head) Get(name string) []byte {
	for _, f := range h.fields {
		if equalFold(h.bytes(f.name), name) {
			return h.bytes(f.value)
		}
	}
	return nil
}

// NamedByConnection reports whether Connection lists name.
func (h *Head) NamedByConnection(name []byte) bool {
	for _, t := range h.connTokens {
		if bytes.EqualFold(h.bytes(t), name) {
			return true
		}
	}
	return false
}

// IsMethod reports whether the request method is m (case-sensitive, as methods are).
func (h *Head) IsMethod(m string) bool { return string(h.Method()) == m }

// ReadRequestHead reads a request head from br into h (after h.Reset).
// Leading empty lines are skipped (RFC 9112 §2.2). It returns io.EOF if the
// connection ended cleanly before a request began.
func ReadRequestHead(br *bufio.Reader, h *Head) error {
	h.Reset()
	line, err := readLine(br, h, true)
	if err != nil {
		return err
	}
	// method SP request-target SP HTTP-version
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return malformed("request line has no method")
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return malformed("request line has no target")
	}
	method, target, proto := line[:sp1], rest[:sp2], rest[sp2+1:]
	if !isToken(method) {
		return malformed("bad method")
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return malformed("bad character in request target")
		}
	}
	minor, ok := parseProto(proto)
	if !ok {
		return malformed("unsupported protocol version " + string(proto))
	}
	base := int32(len(h.buf))
	h.buf = append(h.buf, line...)
	h.method = span{base, base + int32(sp1)}
	h.target = span{base + int32(sp1) + 1, base + int32(sp1) + 1 + int32(sp2)}
	h.proto = span{h.target.end + 1, base + int32(len(line))}
	h.Minor = minor
	if err := readFields(br, h); err != nil {
		return err
	}
	if minor == 1 && h.host.end == 0 {
		return malformed("HTTP/1.1 request without Host")
	}
	return nil
}

// ReadResponseHead reads a response head from br into h (after h.Reset).
func ReadResponseHead(br *bufio.Reader, h *Head) error {
	h.Reset()
	line, err := readLine(br, h, false)
	if err != nil {
		return err
	}
	// HTTP-version SP status-code SP [reason-phrase]
	if len(line) < 12 || line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return malformed("bad status line")
	}
	minor, ok := parseProto(line[:8])
	if !ok {
		return malformed("bad status line protocol")
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return malformed("bad status code")
		}
		code = code*10 + int(c-'0')
	}
	base := int32(len(h.buf))
	h.buf = append(h.buf, line...)
	h.proto = span{base, base + 8}
	if len(line) > 13 {
		h.reason = span{base + 13, base + int32(len(line))}
	}
	h.Status, h.Minor = code, minor
	return readFields(br, h)
}

// readLine returns the next line without its line ending. It copies
// nothing; the result is valid until the next read from br.
func readLine(br *bufio.Reader, h *Head, skipEmpty bool) ([]byte, error) {
	for n := 0; ; n++ {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, ErrHeadTooLarge
		}
		if err != nil {
			if n == 0 && len(line) == 0 && err == io.EOF {
				return nil, io.EOF
			}
			if err == io.EOF {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = trimEOL(line)
		if len(line) == 0 && skipEmpty && n < 4 {
			continue
		}
		return line, nil
	}
}

func trimEOL(line []byte) []byte {
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

func parseProto(p []byte) (minor int, ok bool) {
	if len(p) != 8 || string(p[:7]) != "HTTP/1." {
		return 0, false
	}
	switch p[7] {
	case '1':
		return 1, true
	case '0':
		return 0, true
	}
	return 0, false
}

// readFields reads header fields until the empty line, and derives framing.
func readFields(br *bufio.Reader, h *Head) error {
	var clSeen bool
	var teSeen bool
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return ErrHeadTooLarge
		}
		if err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		line = trimEOL(line)
		if len(line) == 0 {
			break
		}
		if len(h.buf)+len(line) > MaxHeadBytes {
			return ErrHeadTooLarge
		}
		if line[0] == ' ' || line[0] == '\t' {
			return malformed("obsolete line folding")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return malformed("header field without a colon")
		}
		name := line[:colon]
		if !isToken(name) {
			return malformed("bad header field name " + quote(name))
		}
		value := trimOWS(line[colon+1:])
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return malformed("control character in header field " + string(name))
			}
		}
		base := int32(len(h.buf))
		h.buf = append(h.buf, line...)
		vstart := base + int32(colon+1) + int32(len(line[colon+1:])-len(trimLeftOWS(line[colon+1:])))
		f := Field{name: span{base, base + int32(colon)}, value: span{vstart, vstart + int32(len(value))}}
		h.fields = append(h.fields, f)

		switch {
		case equalFold(name, "Content-Length"):
			n, ok := parseContentLength(value)
			if !ok || clSeen && n != h.ContentLength {
				return malformed("bad or conflicting Content-Length")
			}
			h.ContentLength, clSeen = n, true
		case equalFold(name, "Transfer-Encoding"):
			teSeen = true
			last := lastToken(value)
			if !equalFold(last, "chunked") {
				return malformed("unsupported Transfer-Encoding " + quote(value))
			}
			h.Chunked = true
		case equalFold(name, "Connection"):
			forEachToken(value, func(tok []byte, s, e int) {
				switch {
				case equalFold(tok, "close"):
					h.Close = true
				case equalFold(tok, "keep-alive"):
					h.KeepAlive = true
				}
				off := f.value.start + int32(s)
				h.connTokens = append(h.connTokens, span{off, f.value.start + int32(e)})
			})
		case equalFold(name, "Host"):
			if h.host.end != 0 {
				return malformed("more than one Host")
			}
			h.host = f.value
		case equalFold(name, "Upgrade"):
			h.upgrade = f.value
		case equalFold(name, "Expect"):
			h.ExpectContinue = equalFold(value, "100-continue")
		case equalFold(name, "TE"):
			forEachToken(value, func(tok []byte, _, _ int) {
				if equalFold(tok, "trailers") {
					h.TrailersOK = true
				}
			})
		}
	}
	if clSeen && teSeen {
		return malformed("both Content-Length and Transfer-Encoding")
	}
	if h.Minor == 0 && !h.KeepAlive {
		h.Close = true
	}
	return nil
}

func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func trimLeftOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func trimOWS(b []byte) []byte {
	b = trimLeftOWS(b)
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// forEachToken calls f for each comma-separated token of v with its
// offsets in v.
func forEachToken(v []byte, f func(tok []byte, start, end int)) {
	start := 0
	for i := 0; i <= len(v); i++ {
		if i == len(v) || v[i] == ',' {
			s, e := start, i
			for s < e && (v[s] == ' ' || v[s] == '\t') {
				s++
			}
			for e > s && (v[e-1] == ' ' || v[e-1] == '\t') {
				e--
			}
			if e > s {
				f(v[s:e], s, e)
			}
			start = i + 1
		}
	}
}

func lastToken(v []byte) []byte {
	var last []byte
	forEachToken(v, func(tok []byte, _, _ int) { last = tok })
	return last
}

// equalFold compares ASCII case-insensitively without allocating.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x|0x20 != y|0x20 || (x|0x20 < 'a' || x|0x20 > 'z') && x != y {
			return false
		}
	}
	return true
}

func quote(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return "\"" + string(b) + "\""
}
