package conn

import (
	"io"
	"net"
)

// Pipe copies both ways until both directions end (an upgraded
// connection). clientR holds bytes the server had already buffered from
// the client.
func Pipe(client net.Conn, clientR io.Reader, upstream io.ReadWriteCloser) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(upstream, clientR)
		CloseWrite(upstream)
	}()
	io.Copy(client, upstream)
	CloseWrite(client)
	<-done
}

// CloseWrite half-closes when the connection supports it, else closes.
func CloseWrite(c io.Closer) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
