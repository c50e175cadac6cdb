// Package http2 is Weft's own HTTP/2 engine (docs/adr/0005): it serves
// client connections with prior knowledge, on plain TCP or inside TLS the
// listener terminated (a peer sidecar's mutual TLS), where the next hop
// speaks HTTP/2, by forwarding frames, not requests, to shared
// connections to instances. (Inside this package, the name http2 is
// golang.org/x/net/http2, whose framer and HPACK it uses.)
//
//	client conn (h2Client: one reader goroutine)
//	   HEADERS -> checked, Route(:authority) -> Cluster, Call.Next
//	           -> a stream on a shared connection to the instance (h2Peer)
//	   DATA    -> passed on within both sides' windows
//	instance conn (h2Peer: one reader goroutine, shared by all clients)
//	   HEADERS, DATA, trailers, RST_STREAM -> the client stream they belong to
//
// Its seams: the listener hands it a conn.Client (Engine.Serve) and
// registers GOAWAY on it for shutdown; each stream runs the plan (package
// plan) as a state machine, open -> connect -> responseHead or peerReset
// -> reopen, and answers mesh errors with MeshError.H2Parts.
package http2
