//go:build race

package meshtest

// raceEnabled builds the binaries under test with -race too.
const raceEnabled = true
