// Package stdhttp is the engine built on net/http and x/net/http2: the
// HTTP/2 that Weft's frame engine does not take (over TLS, h2c upgrades,
// the inbound of an HTTP/1.1 app, which translates), every HTTP/1
// connection of an h2c app's inbound, and the client transports of a hop.
// Its seams are the plan (package plan: a Call per request, mesh errors
// through MeshError.WriteStd) and the connections the listener hands it
// (Server, over package conn's Client):
//
//	listener -> Server.ServeH2 (prior knowledge) | Server.HandOff (HTTP/1, h2c)
//	   -> net/http -> Outbound | Inbound | Fixed (ServeHTTP)
//	   -> route: prepare, grpc-timeout, Call.Next -> roundTrip (head timeout)
//	   -> writeResponse (headers, streamed body, trailers) | MeshError
//
// Outbound, Inbound and Fixed also resolve destinations for the other
// engines (Resolve, ResolveSNI, RouteH2), so each listener has one router.
package stdhttp
