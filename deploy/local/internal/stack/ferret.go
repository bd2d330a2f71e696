package stack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Ferret is FerretDB v1 embedded in this process, serving the MongoDB wire
// protocol over SQLite files in a directory; every Base B and C replica
// points at it, so replicas share data as they would on a MongoDB cluster.
type Ferret struct {
	URI    string
	cancel context.CancelFunc
	done   chan struct{}
}

// StartFerret starts FerretDB on addr with its SQLite files in dir.
func StartFerret(ctx context.Context, dir, addr string, logger *slog.Logger) (*Ferret, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if !PortFree(addr) {
		return nil, fmt.Errorf("address %s is in use: is another strata-local running? (stop it, or set MONGODB_URI)", addr)
	}
	// synchronous(normal): in SQLite's WAL mode (FerretDB's default) a
	// commit then appends to the WAL without an fsync. The fsync made each
	// upsert cost 1.2–1.8 ms; BenchmarkFerretUpsertByID measures 0.5–0.8 ms
	// without it, and a third less CPU. A committed write survives this
	// process being killed; only an operating-system crash or power loss
	// can roll back the last commits. That is the right trade for the local
	// platform; a production MongoDB keeps its own journal settings.
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + filepath.Clean(dir) + "/?_pragma=synchronous(normal)",
		Logger:    logger,
	})
	if err != nil {
		return nil, fmt.Errorf("ferretdb: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fr := &Ferret{URI: f.MongoDBURI(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(fr.done)
		if err := f.Run(rctx); err != nil {
			logger.Error("ferretdb stopped", "err", err)
		}
	}()
	// Wait for a real ping.
	client, err := mongo.Connect(options.Client().ApplyURI(fr.URI).SetTimeout(2 * time.Second))
	if err != nil {
		fr.Stop()
		return nil, fmt.Errorf("ferretdb client: %w", err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := client.Ping(ctx, nil); err == nil {
			return fr, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			fr.Stop()
			return nil, fmt.Errorf("ferretdb did not answer a ping")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops FerretDB.
func (f *Ferret) Stop() {
	if f == nil {
		return
	}
	f.cancel()
	<-f.done
}
