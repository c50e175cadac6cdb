// Package plan is what every engine of the data path shares, whatever
// protocol it speaks: the request plan of a destination (Cluster) and one
// request's trip through it (Call), the routing table (Table) and its
// Policy, the errors the mesh answers itself (MeshError, in each wire
// form), the data path's metrics, the hop-by-hop field list and gRPC
// timeouts (docs/adr/0006-request-pipeline.md, 0008-engine-packages.md).
//
//	engine (http1 | http2 | stdhttp | tcp)
//	   | route: Table.Lookup -> *Cluster
//	   v
//	Call.Next -> endpoint (balancer) -> engine sends -> Call.OK / Call.Failed
//	   ^                                                      |
//	   +---------------- Call.Again (retry decision) ---------+
//	                     Call.Result -> MeshError -> WriteH1 | WriteStd | H2Parts
//
// It knows no connection and no engine: engines import it, never the
// other way round.
package plan
