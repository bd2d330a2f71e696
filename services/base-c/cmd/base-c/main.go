// Command base-c serves Base C: last bureau query, financial movements and
// last card purchase, behind basic auth, from an in-process cache.
package main

import (
	"github.com/strata-bureau/strata/pkg/command"
	"github.com/strata-bureau/strata/services/base-c/app"
)

func main() {
	command.Main("base-c", command.Service(app.Load, app.Run, nil))
}
