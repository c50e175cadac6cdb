// Package conn is the engine-neutral client connection of the data path:
// what a listener accepts, detects and hands to an engine (Client), with
// the socket I/O every engine shares: pooled buffers, raw socket reads
// and writes inside the poller's callbacks (Sock), the lazy read deadline,
// dialing, byte pipes and closing without waiting.
//
//	listener: Accept -> Client{Conn, BR, BW, IP, Sock} -> detect
//	   -> engine (http1 | http2 | stdhttp | tcp) reads and writes Client
//	   <- Shutdown: CloseIfIdle / GoAway; Close: CloseNow(Raw)
package conn
