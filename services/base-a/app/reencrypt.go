package app

import (
	"context"
	"fmt"
	"io"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/postgres"
	"github.com/strata-bureau/strata/services/base-a/internal/crypto"
	"github.com/strata-bureau/strata/services/base-a/internal/store"
)

// ReencryptConfig is what basea-reencrypt reads (BASEA_ prefix).
type ReencryptConfig struct {
	DatabaseURL   config.Secret `env:"DATABASE_URL, required"`
	DataKeys      config.Secret `env:"DATA_KEYS, required"`
	BlindIndexKey config.Secret `env:"BLIND_INDEX_KEY, required"`
}

// openKeyedStore loads ReencryptConfig from l and opens Base A's store
// with its data keys on a two-connection pool; name names the store's
// breaker. The caller runs the returned close when done.
func openKeyedStore(ctx context.Context, l config.Lookuper, name string) (*store.Store, *crypto.Keyring, func(), error) {
	var cfg ReencryptConfig
	if err := config.Load(ctx, Prefix, &cfg, l); err != nil {
		return nil, nil, nil, err
	}
	keys, err := crypto.ParseKeys(cfg.DataKeys.Reveal(), cfg.BlindIndexKey.Reveal())
	if err != nil {
		return nil, nil, nil, err
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL.Reveal(), postgres.Options{MaxConns: 2})
	if err != nil {
		return nil, nil, nil, err
	}
	return store.New(pool, keys, breaker.Standalone(breaker.Config{Name: name})), keys, pool.Close, nil
}

// RunReencrypt moves every row to the newest data key, printing progress.
func RunReencrypt(ctx context.Context, l config.Lookuper, out io.Writer) error {
	st, keys, closeStore, err := openKeyedStore(ctx, l, "reencrypt")
	if err != nil {
		return err
	}
	defer closeStore()
	fmt.Fprintf(out, "re-encrypting with data key %d\n", keys.Current())
	return st.Reencrypt(ctx, func(table string, done, total int64) {
		pct := 100.0
		if total > 0 {
			pct = float64(done) * 100 / float64(total)
		}
		fmt.Fprintf(out, "\r%-7s %d/%d (%.0f%%)", table, done, total, pct)
		if done >= total {
			fmt.Fprintln(out)
		}
	})
}
