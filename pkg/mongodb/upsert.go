package mongodb

import (
	"context"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// UpsertByID applies update to the document of c whose _id is id, creating
// it when there is none. Two writers creating one document at once (two
// replicas, two events) make the loser fail on the duplicate key: it is
// written once more, and then updates the document the winner created.
// The filter is _id alone, the only one FerretDB v1 pushes down to SQLite.
func UpsertByID(ctx context.Context, c *mongo.Collection, id string, update any) error {
	filter := bson.D{{Key: "_id", Value: id}}
	_, err := c.UpdateOne(ctx, filter, update, options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		_, err = c.UpdateOne(ctx, filter, update, options.UpdateOne().SetUpsert(true))
	}
	return err
}

// maxBulk caps the statements per bulk write: FerretDB v1 keeps every
// update statement's query open until the whole command ends, one SQLite
// connection each from a pool of 100, so a command updating more than
// about 100 existing documents waits for itself forever.
const maxBulk = 50

// UpsertManyByID is UpsertByID for many documents of c at once (updates by
// _id), in unordered bulk writes of at most maxBulk statements each; a bulk
// write in which one upsert lost a race is written once more, whole. The
// statements that had succeeded are then applied a second time, so every
// update must be idempotent ($set, $max, $min, $setOnInsert; never $inc
// or $push): Base B's last_access and Base C's last_query are $max.
func UpsertManyByID(ctx context.Context, c *mongo.Collection, updates map[string]bson.D) error {
	models := make([]mongo.WriteModel, 0, len(updates))
	for id, u := range updates {
		models = append(models, mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).SetUpdate(u).SetUpsert(true))
	}
	for chunk := range slices.Chunk(models, maxBulk) {
		_, err := c.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false))
		if mongo.IsDuplicateKeyError(err) {
			_, err = c.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
