package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
)

// readResponse reads one HTTP/1.1 response from br and discards its body.
// It allocates nothing for a well-formed response, so the generator runs no
// garbage collections while it measures: a collection would delay workers and
// be charged to the server. It returns the status code and whether the
// server closes the connection afterwards.
//
// Interim (1xx) responses are skipped. Bodies framed by Content-Length or
// chunked are read; a response without either (read until close) is
// refused, since every path under test frames its responses.
func readResponse(br *bufio.Reader) (status int, closeConn bool, err error) {
	for {
		status, closeConn, err = readOne(br)
		if err != nil || status/100 != 1 || status == 101 {
			return status, closeConn, err
		}
	}
}

// readOne reads one response head and its body.
func readOne(br *bufio.Reader) (status int, closeConn bool, err error) {
	line, err := readLine(br)
	if err != nil {
		return 0, false, fmt.Errorf("status line: %w", err)
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	code, ok := parseUint(line[9:12], 10)
	if !ok {
		return 0, false, fmt.Errorf("malformed status code in %q", line)
	}
	status = int(code)
	closeConn = line[7] == '0' // HTTP/1.0 closes unless told otherwise
	length, chunked := int64(-1), false
	var sawClose, sawKeepAlive bool
	for {
		line, err = readLine(br)
		if err != nil {
			return 0, false, fmt.Errorf("header: %w", err)
		}
		if len(line) == 0 {
			if sawClose {
				closeConn = true
			} else if sawKeepAlive {
				closeConn = false
			}
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return 0, false, fmt.Errorf("malformed header line %q", line)
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			n, ok := parseUint(value, 10)
			if !ok {
				return 0, false, fmt.Errorf("malformed Content-Length %q", value)
			}
			length = n
		case asciiEqualFold(name, "transfer-encoding"):
			// The last coding says how the message ends: "gzip, chunked".
			codings := value
			if i := bytes.LastIndexByte(codings, ','); i >= 0 {
				codings = bytes.TrimSpace(codings[i+1:])
			}
			chunked = asciiEqualFold(codings, "chunked")
		case asciiEqualFold(name, "connection"):
			for opts := value; len(opts) > 0; {
				var opt []byte
				opt, opts, _ = bytes.Cut(opts, []byte{','})
				if opt = bytes.TrimSpace(opt); asciiEqualFold(opt, "close") {
					sawClose = true
				} else if asciiEqualFold(opt, "keep-alive") {
					sawKeepAlive = true
				}
			}
		}
	}
	switch {
	case status == 204 || status == 304 || status/100 == 1:
		return status, closeConn, nil
	case chunked:
		return status, closeConn, discardChunked(br)
	case length >= 0:
		if _, err := br.Discard(int(length)); err != nil {
			return 0, false, fmt.Errorf("body: %w", err)
		}
		return status, closeConn, nil
	default:
		return 0, false, errors.New("response has neither Content-Length nor chunked framing")
	}
}

// discardChunked reads a chunked body and its trailers.
func discardChunked(br *bufio.Reader) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return fmt.Errorf("chunk size: %w", err)
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, ok := parseUint(bytes.TrimSpace(line), 16)
		if !ok {
			return fmt.Errorf("malformed chunk size %q", line)
		}
		if size == 0 {
			for { // trailers, then the empty line
				line, err := readLine(br)
				if err != nil {
					return fmt.Errorf("trailer: %w", err)
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(size)); err != nil {
			return fmt.Errorf("chunk: %w", err)
		}
		if crlf, err := readLine(br); err != nil || len(crlf) != 0 {
			return fmt.Errorf("chunk not followed by CRLF")
		}
	}
}

// readLine returns one line without its CRLF; the slice is valid until the
// next read from br.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseUint parses a non-empty decimal or hexadecimal number of at most
// 15 digits (strconv would allocate its error).
func parseUint(b []byte, base int64) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d int64
		switch {
		case '0' <= c && c <= '9':
			d = int64(c - '0')
		case base == 16 && 'a' <= c|0x20 && c|0x20 <= 'f':
			d = int64(c|0x20-'a') + 10
		default:
			return 0, false
		}
		n = n*base + d
	}
	return n, true
}

// asciiEqualFold reports whether b equals the lower-case ASCII string s,
// ignoring case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
