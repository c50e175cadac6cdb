// Package keyspace names the root of Weft's keys in etcd. It imports
// nothing, so that packages which only describe records (registry, config)
// can build their keys without linking etcd:
//
//	/weft/instances/<service>/<id>   registry.Key
//	/weft/proxies/<service>/<id>     registry.ProxyKey
//	/weft/config/<Kind>/<name>       config.Key
//	/weft/history/<Kind>/<name>/<t>  configstore (not pushed)
//	/weft/tokens/<id>                join tokens, hashed (never pushed)
package keyspace

// Prefix is the root of every key Weft writes.
const Prefix = "/weft/"

// TokenPrefix is where join tokens live: a hash of each secret, its scope
// and expiry. The push hub must never send these to sidecars.
const TokenPrefix = Prefix + "tokens/"
