package testenv

import (
	"context"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// EnvRabbitmqctl names the command line that runs rabbitmqctl against the
// test broker (set by strata-local test-env).
const EnvRabbitmqctl = "STRATA_TEST_RABBITMQCTL"

// BrokerPerms are a broker user's permissions on vhost "/": regular
// expressions over exchange and queue names, and over routing keys on
// Exchange (RabbitMQ topic permissions).
type BrokerPerms struct {
	Configure, Write, Read          string
	Exchange, TopicWrite, TopicRead string
}

// BrokerUser creates a broker user unique to the test with perms and
// returns its AMQP URL (the user name is the URL's); the user is deleted
// when the test ends.
func BrokerUser(t testing.TB, name string, perms BrokerPerms) string {
	t.Helper()
	AMQPURL(t)
	ctl := strings.Fields(need(t, EnvRabbitmqctl, "rabbitmqctl for the test broker"))
	user := UniqueName(t, name)
	pass := UniqueName(t, "pw")
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		argv := append(append([]string{}, ctl...), args...)
		if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl %s: %v: %s", args[0], err, out)
		}
	}
	run("add_user", user, pass)
	t.Cleanup(func() { run("delete_user", user) })
	run("set_permissions", "-p", "/", user, perms.Configure, perms.Write, perms.Read)
	if perms.Exchange != "" {
		run("set_topic_permissions", "-p", "/", user, perms.Exchange, perms.TopicWrite, perms.TopicRead)
	}
	u, err := url.Parse(AMQPURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, pass)
	return u.String()
}
