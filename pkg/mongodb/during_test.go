package mongodb_test

import (
	"reflect"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-bureau/strata/pkg/mongodb"
)

func TestDuringIsHalfOpenAndLeavesOpenSidesOut(t *testing.T) {
	t.Parallel()
	from, to := time.Unix(100, 0), time.Unix(200, 0)
	for _, tc := range []struct {
		from, to time.Time
		want     bson.M
	}{
		{from, to, bson.M{"cpf": "x", "at": bson.M{"$gte": from, "$lt": to}}},
		{from, time.Time{}, bson.M{"cpf": "x", "at": bson.M{"$gte": from}}},
		{time.Time{}, to, bson.M{"cpf": "x", "at": bson.M{"$lt": to}}},
		{time.Time{}, time.Time{}, bson.M{"cpf": "x"}},
	} {
		f := bson.M{"cpf": "x"}
		mongodb.During(f, "at", tc.from, tc.to)
		if !reflect.DeepEqual(f, tc.want) {
			t.Errorf("During(%v, %v) = %v, want %v", tc.from, tc.to, f, tc.want)
		}
	}
}
