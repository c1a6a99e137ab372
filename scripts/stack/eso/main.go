// Upstream External Secrets Operator, built from the Go module proxy for esox's side-by-side
// benchmark (scripts/bench.sh controller). v0.20.4 is the last single-module release the
// proxy serves (v2.x lives in many modules that reference each other by local replace
// directives, which a dependency's go.mod cannot carry); it compiles every provider in.
package main

import (
	"github.com/external-secrets/external-secrets/cmd/controller"
)

func main() {
	controller.Execute()
}
