package h1

import (
	"bufio"
	"io"
)

// Each copy below moves bytes from src's buffer to dst's without another
// copy, and flushes dst whenever src has nothing buffered, just before it
// would block: a streamed body goes out as it comes in, and a small
// message still leaves in one write.

// CopyFixed copies exactly n body bytes.
func CopyFixed(dst *bufio.Writer, src *bufio.Reader, n int64) error {
	for n > 0 {
		b, err := next(dst, src, n)
		if err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if _, err := dst.Write(b); err != nil {
			return &WriteError{err}
		}
		src.Discard(len(b))
		n -= int64(len(b))
	}
	return nil
}

// CopyUntilEOF copies until src ends (a response framed by closing the
// connection).
func CopyUntilEOF(dst *bufio.Writer, src *bufio.Reader) error {
	for {
		b, err := next(dst, src, 1<<62)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := dst.Write(b); err != nil {
			return &WriteError{err}
		}
		src.Discard(len(b))
	}
}

// next returns up to max buffered bytes of src, filling its buffer first
// (after flushing dst) when it is empty.
func next(dst *bufio.Writer, src *bufio.Reader, max int64) ([]byte, error) {
	if src.Buffered() == 0 {
		if dst.Buffered() > 0 {
			if err := dst.Flush(); err != nil {
				return nil, &WriteError{err}
			}
		}
		if _, err := src.Peek(1); err != nil {
			return nil, err
		}
	}
	n := src.Buffered()
	if int64(n) > max {
		n = int(max)
	}
	return src.Peek(n)
}

// CopyChunked copies a chunked body as it is: chunk-size lines, data, the
// last chunk and the trailer section. It checks the framing as it goes.
func CopyChunked(dst *bufio.Writer, src *bufio.Reader) error { return copyChunks(dst, src, true) }

// DechunkTo copies a chunked body's data only, for a receiver that cannot
// take chunked framing (an HTTP/1.0 client). Trailers are dropped.
func DechunkTo(dst *bufio.Writer, src *bufio.Reader) error { return copyChunks(dst, src, false) }

// copyChunks copies the data of each chunk, and with framing also the
// chunk lines and the trailer section.
func copyChunks(dst *bufio.Writer, src *bufio.Reader, framing bool) error {
	frame := func(b []byte) error {
		if !framing {
			return nil
		}
		if _, err := dst.Write(b); err != nil {
			return &WriteError{err}
		}
		return nil
	}
	for {
		line, err := readChunkLine(dst, src)
		if err != nil {
			return err
		}
		size, ok := chunkSize(line)
		if !ok {
			return malformed("bad chunk size line")
		}
		if err := frame(line); err != nil {
			return err
		}
		if size == 0 {
			trailers := dst
			if !framing {
				trailers = bufio.NewWriterSize(io.Discard, 16)
			}
			return copyTrailers(trailers, src)
		}
		if err := CopyFixed(dst, src, size); err != nil {
			return err
		}
		crlf, err := readChunkLine(dst, src)
		if err != nil {
			return err
		}
		if len(trimEOL(crlf)) != 0 {
			return malformed("chunk data longer than its size")
		}
		if err := frame(crlf); err != nil {
			return err
		}
	}
}

func copyTrailers(dst *bufio.Writer, src *bufio.Reader) error {
	for total := 0; ; {
		line, err := readChunkLine(dst, src)
		if err != nil {
			return err
		}
		total += len(line)
		if total > MaxHeadBytes {
			return ErrHeadTooLarge
		}
		if _, err := dst.Write(line); err != nil {
			return &WriteError{err}
		}
		if len(trimEOL(line)) == 0 {
			return nil
		}
	}
}

// readChunkLine reads one line including its ending, flushing dst first
// if src would block.
func readChunkLine(dst *bufio.Writer, src *bufio.Reader) ([]byte, error) {
	if src.Buffered() == 0 && dst.Buffered() > 0 {
		if err := dst.Flush(); err != nil {
			return nil, &WriteError{err}
		}
	}
	line, err := src.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, malformed("chunk line too long")
	}
	if err == io.EOF {
		return nil, io.ErrUnexpectedEOF
	}
	return line, err
}

// chunkSize parses "1a;ext=1\r\n".
func chunkSize(line []byte) (int64, bool) {
	line = trimEOL(line)
	var n int64
	digits := 0
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		case c == ';' || c == ' ' || c == '\t':
			return n, digits > 0
		default:
			return 0, false
		}
		if digits++; digits > 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, digits > 0
}

// WriteError marks a failure to write to the destination (as opposed to
// reading from the source): the caller learns which side broke.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "write: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }
