// Command base-a serves Base A: CPF, name, address and debts behind
// short-lived scoped grants, over mTLS, with a tamper-evident audit log.
package main

import (
	"github.com/strata-bureau/strata/pkg/command"
	"github.com/strata-bureau/strata/services/base-a/app"
)

func main() {
	command.Main("base-a", command.Service(app.Load, app.Run, app.RunMigrate))
}
