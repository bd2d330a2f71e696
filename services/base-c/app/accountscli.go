package app

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/mongodb"
	"github.com/strata-bureau/strata/services/base-c/internal/accounts"
	"github.com/strata-bureau/strata/services/base-c/internal/auth"
	"github.com/strata-bureau/strata/services/base-c/internal/events"
	"github.com/strata-bureau/strata/services/base-c/internal/store"
)

// Store is what Base C and basec-accounts share: the Mongo store and the
// Argon2id cost of account passwords.
type Store struct {
	config.Mongo
	// Argon2id memory in KiB; OWASP's minimum (19 MiB) is the floor.
	ArgonMemoryKiB uint32 `env:"ARGON2_MEMORY_KIB, default=19456"`
	ArgonTime      uint32 `env:"ARGON2_TIME, default=2"`
}

func defaultStore() Store { return Store{Mongo: config.Mongo{MongoDatabase: "strata_basec"}} }

// CLIConfig is what basec-accounts needs (same BASEC_ variables).
type CLIConfig struct {
	Store
	AMQPURL config.Secret `env:"AMQP_URL, required"`
	// AMQPCA is the CA bundle of the broker's certificate (amqps://).
	AMQPCA string `env:"AMQP_CA"`
}

const accountsUsage = "usage: basec-accounts create [-admin] USER | rotate USER | disable USER " +
	"(the password is read from standard input, never from arguments)"

// RunAccounts is the basec-accounts command: it changes accounts directly in
// the store and broadcasts the invalidation to every running replica.
func RunAccounts(ctx context.Context, l config.Lookuper, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) < 1 {
		return errors.New(accountsUsage)
	}
	cmd := args[0]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	admin := fs.Bool("admin", false, "create an admin account (may manage accounts over gRPC)")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 {
		return errors.New(accountsUsage)
	}
	user := fs.Arg(0)
	cfg := CLIConfig{Store: defaultStore()}
	if err := config.Load(ctx, Prefix, &cfg, l); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client, err := mongodb.Connect(ctx, cfg.MongoURI.Reveal(), mongodb.Options{AppName: "basec-accounts"})
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	mq, err := amqp.Dial(ctx, amqp.Config{URL: cfg.AMQPURL.Reveal(), CAFile: cfg.AMQPCA, Name: "basec-accounts"})
	if err != nil {
		return err
	}
	defer func() { _ = mq.Close() }()
	bc := &events.Broadcaster{Publisher: amqp.NewPublisher(mq, amqp.PublisherOptions{}), ReplicaID: "cli"}
	mgr := &accounts.Manager{
		Store:      store.New(client.Database(cfg.MongoDatabase)),
		Params:     auth.Params{MemoryKiB: cfg.ArgonMemoryKiB, Time: cfg.ArgonTime, Threads: 1},
		Invalidate: bc.CredentialChanged,
	}
	readPassword := func() (string, error) {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	switch cmd {
	case "create", "rotate":
		pw, err := readPassword()
		if err != nil {
			return err
		}
		if cmd == "create" {
			err = mgr.Create(ctx, user, pw, *admin)
		} else {
			err = mgr.Rotate(ctx, user, pw)
		}
		if err != nil {
			return err
		}
	case "disable":
		if err := mgr.Disable(ctx, user); err != nil {
			return err
		}
	default:
		return errors.New(accountsUsage)
	}
	fmt.Fprintf(stdout, "%s: %s done\n", user, cmd)
	return nil
}
