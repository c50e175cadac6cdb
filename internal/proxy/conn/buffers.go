package conn

import (
	"bufio"
	"io"
	"net"
	"sync"
)

// Buffer sizes of the data path's connections. A head line longer than
// the read buffer is refused (431), so it is sized for large cookies.
const (
	ReadBufSize  = 16 << 10
	writeBufSize = 16 << 10
)

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, ReadBufSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufSize) }}
)

// GetReader returns a pooled reader of r.
func GetReader(r io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func getWriter(w io.Writer) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

// PutBuffers returns pooled buffers (either may be nil).
func PutBuffers(br *bufio.Reader, bw *bufio.Writer) {
	if br != nil {
		br.Reset(nil)
		readers.Put(br)
	}
	if bw != nil {
		bw.Reset(nil)
		writers.Put(bw)
	}
}

// Buffers returns pooled buffers for c, over the socket's own reads and
// writes when c is plain TCP (sock is nil otherwise).
func Buffers(c net.Conn) (sock *Sock, br *bufio.Reader, bw *bufio.Writer) {
	var rw io.ReadWriter = c
	if sock = NewSock(c); sock != nil {
		rw = sock
	}
	return sock, GetReader(rw), getWriter(rw)
}
