package app

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/strata-bureau/strata/deploy/local/internal/stack"
)

// broker is each service's own broker identity: its AMQP URL, and the
// producer each consumer accepts each event type from.
type broker struct {
	url  map[string]string // by service: gateway, base-a, base-b, base-c, strata-ingest
	user map[string]string
	// own is true when every service has its own user (the launcher could
	// run rabbitmqctl); otherwise all share the given URL's user.
	own bool
}

// brokerServices and what each may do on strata.events: the routing keys
// it publishes (topic write) and binds (topic read), and the queues it owns.
var brokerServices = []struct {
	name, publishes, binds, queues string
}{
	// The gateway witnesses Base A's signed audit heads (its own queue).
	{"gateway", `^cpf\.queried$`, `^audit\.checkpoint\.signed$`, `gateway\..*`},
	{"base-a", `^(debt\.summary\.changed|audit\..+)$`, `^$`, ``},
	// Base B replicas tell each other which profiles changed.
	{"base-b", `^baseb\..+$`, `^(debt\.summary\.changed|baseb\..+)$`, `baseb\..*`},
	{"base-c", `^basec\..+$`, `^(cpf\.queried|card\.purchase\.recorded|financial\.movement\.recorded|basec\..+)$`, `basec\..*`},
	// Internal producers (card processors, core banking): the demo seed.
	{"strata-ingest", `^(card\.purchase\.recorded|financial\.movement\.recorded)$`, `^$`, ``},
}

// setupBroker gives every service its own broker user with the least it
// needs, when ctl (a rabbitmqctl command line) is known; with an external
// broker (AMQP_URL) every service uses that URL's user.
func setupBroker(ctx context.Context, cfg Config, stores *Stores, secrets *secretStore) (*broker, error) {
	b := &broker{url: map[string]string{}, user: map[string]string{}}
	base, err := url.Parse(stores.AMQPURL)
	if err != nil {
		return nil, fmt.Errorf("AMQP URL: invalid")
	}
	ctl := stores.RabbitCtl
	if ctl == nil && stores.Rabbit != nil {
		ctl = stores.Rabbit.CtlCommand()
	}
	for _, s := range brokerServices {
		b.url[s.name], b.user[s.name] = stores.AMQPURL, base.User.Username()
	}
	if len(ctl) == 0 {
		return b, nil
	}
	const ex = "strata.events"
	var users []stack.BrokerUser
	for _, s := range brokerServices {
		name := s.name
		if cfg.PortOffset != 0 {
			name = fmt.Sprintf("%s-%d", s.name, cfg.PortOffset) // platforms sharing a test broker
		}
		pw, err := secrets.get("broker-" + s.name + ".password")
		if err != nil {
			return nil, err
		}
		// Names: the exchanges, and the queues the service owns (with
		// their dead-letter queues). Publishing needs write on the
		// exchange; binding a queue needs write on the queue and read on
		// the exchange; consuming needs read on the queue; declaring a
		// queue with a dead-letter exchange needs write on strata.dlx.
		configure, write, read := `^(strata\.events|strata\.dlx)$`, `^strata\.events$`, `^$`
		if s.queues != "" {
			configure = `^(strata\.events|strata\.dlx|` + s.queues + `)$`
			write, read = configure, configure
		}
		users = append(users, stack.BrokerUser{Name: name, Password: pw, Configure: configure, Write: write, Read: read,
			Exchange: ex, TopicWrite: s.publishes, TopicRead: s.binds})
		u := *base
		u.User = url.UserPassword(name, pw)
		b.url[s.name], b.user[s.name] = u.String(), name
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := stack.EnsureUsers(cctx, ctl, users); err != nil {
		return nil, fmt.Errorf("broker users: %w", err)
	}
	b.own = true
	return b, nil
}

// producers is a consumer's AMQP_PRODUCERS value: each type it accepts and
// the user of the service that owns it.
func (b *broker) producers(types map[string]string) string {
	var parts []string
	for typ, svc := range types {
		parts = append(parts, typ+"="+b.user[svc])
	}
	return strings.Join(parts, ";")
}
