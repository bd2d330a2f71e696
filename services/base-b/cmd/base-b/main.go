// Command base-b serves Base B: profiles, credit scores and the ML feature
// export, behind OAuth2 access tokens it verifies itself.
package main

import (
	"github.com/strata-bureau/strata/pkg/command"
	"github.com/strata-bureau/strata/services/base-b/app"
)

func main() {
	command.Main("base-b", command.Service(app.Load, app.Run, nil))
}
