// Package push carries state from etcd to sidecars as versioned,
// incremental updates over one long-lived stream per sidecar.
//
//	etcd watch (/weft/...) --> hub.Hub: state at revision R + log of recent changes
//	                              |  (one broadcast channel, closed on change)
//	                              v
//	   hub.Handler per sidecar: Since(lastRev) -> snapshot or changes
//	                              |  newline-delimited JSON over HTTP (Message)
//	                              v
//	   push.Client in the sidecar: applies changes, keeps lastRev, reconnects
//	   with ?since=lastRev and gets only what it missed.
//
// The version is etcd's revision, which is global to the cluster: a sidecar
// can resume against any control plane that shares the etcd. The Hub never
// blocks on a slow stream: each stream pulls what it has not seen when it is
// ready to write, and falls back to a full snapshot if the log has moved on.
//
// This package holds the wire format and the Client, and does not link etcd,
// so that a sidecar built alone stays small. The server side, which follows
// etcd, is package push/hub, used only by the control plane.
package push

import (
	"encoding/json"
	"fmt"
	"time"
)

// Message types on the stream.
const (
	TypeSnapshot = "snapshot" // replaces the receiver's whole state
	TypeUpdate   = "update"   // changes after the receiver's last revision
	TypePing     = "ping"     // keeps the stream alive; carries nothing
)

// Message is one line on the stream.
type Message struct {
	Type     string   `json:"type"`
	Revision int64    `json:"revision,omitempty"`
	Changes  []Change `json:"changes,omitempty"`
}

// Change sets Key to Value, or deletes Key when Value is empty.
type Change struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value,omitempty"`
}

// PingInterval is how often an idle stream carries a ping, so that both
// ends notice a dead peer; a client gives up after three missed pings.
const PingInterval = 5 * time.Second

// Encode returns m as one line of the stream, newline included.
func Encode(m Message) []byte {
	b, err := json.Marshal(m)
	if err != nil { // only plain types and valid stored JSON go in
		panic(fmt.Sprintf("push: encode message: %v", err))
	}
	return append(b, '\n')
}

// PingLine is the encoded ping message.
var PingLine = Encode(Message{Type: TypePing})
