// Package http1 is the HTTP/1.1 fast path: one goroutine per client
// connection reads a request head, forwards head and body to a pooled
// upstream connection and copies the response back, without net/http and
// without a goroutine hand-off per request (docs/adr/0002, 0004). Per
// request, with warm connections, it allocates nothing.
//
//	Conn (conn.Client + the fast path's state)
//	  -> session: plain requests served inside one RawConn.Read (session.go)
//	  -> h1.ReadRequestHead -> Resolve -> Cluster
//	  -> Call.Next -> pool.get -> writeRequestHead + body -> await the head
//	  -> writeResponseHead + body -> pool.put; metrics
//
// Its seams: the listener hands it a Conn after detection (Engine.Serve)
// and gets back the connections that turn out to be HTTP/2 (ServeH2) or
// asks to upgrade to h2c (HandOff); each request runs the plan (package
// plan) as a loop (exchange.run); CONNECT tunnels go through package tcp.
package http1
