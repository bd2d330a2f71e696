package amqp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Producers names, for each event type a consumer accepts, the broker users
// allowed to publish it. The broker checks that a message's user_id is the
// user that published it, so a consumer that checks the user_id against
// Producers accepts each type only from the service that owns it.
type Producers map[string][]string

// ParseProducers reads "type=user|user;type2=user" (spaces ignored).
func ParseProducers(s string) (Producers, error) {
	p := Producers{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		typ, users, ok := strings.Cut(part, "=")
		typ = strings.TrimSpace(typ)
		if !ok || typ == "" {
			return nil, fmt.Errorf("producers: %q is not type=user|user", part)
		}
		for _, u := range strings.Split(users, "|") {
			if u = strings.TrimSpace(u); u != "" {
				p[typ] = append(p[typ], u)
			}
		}
		if len(p[typ]) == 0 {
			return nil, fmt.Errorf("producers: no user for %s", typ)
		}
	}
	if len(p) == 0 {
		return nil, errors.New("producers: empty")
	}
	return p, nil
}

// UnmarshalText implements encoding.TextUnmarshaler: configuration
// (pkg/config) decodes a service's AMQP_PRODUCERS into Producers, so a
// malformed value stops the service at load, naming the setting.
func (p *Producers) UnmarshalText(b []byte) error {
	v, err := ParseProducers(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Admits reports whether user may publish events of type typ.
func (p Producers) Admits(typ, user string) bool {
	return user != "" && slices.Contains(p[typ], user)
}

// admit applies opts.Producers to d: a delivery from a producer that does
// not own its type is dead-lettered, reported, and never handled.
func (c *Client) admit(ctx context.Context, queue string, d amqp.Delivery, opts ConsumerOptions) bool {
	if opts.Producers == nil || opts.Producers.Admits(d.Type, d.UserId) {
		return true
	}
	if opts.OnForeign != nil {
		opts.OnForeign(d.Type, d.UserId)
	}
	c.obs.deadLettered(ctx, queue, "foreign_producer")
	c.logger.WarnContext(ctx, "event from a producer that does not own its type; dead-lettered",
		"message_id", d.MessageId, "type", d.Type, "user_id", d.UserId)
	_ = d.Nack(false, false)
	return false
}
