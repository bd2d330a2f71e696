// Command gateway serves Strata's public HTTP/JSON gateway: API keys, limits,
// the built-in OAuth2 issuer, and calls to the three bases.
package main

import (
	"github.com/strata-bureau/strata/pkg/command"
	"github.com/strata-bureau/strata/services/gateway/app"
)

func main() {
	command.Main("gateway", command.Service(app.Load, app.Run, app.RunMigrate))
}
