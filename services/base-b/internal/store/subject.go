package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/strata-bureau/strata/services/base-b/internal/domain"
)

// SubjectData is what Base B holds about a CPF and the access it keeps
// (the latest only), for the data subject's report.
type SubjectData struct {
	Holds      bool
	Data       []string
	LastAccess *Access
}

type accessDoc struct {
	At       time.Time `bson:"at"`
	Who      string    `bson:"who"`
	ClientIP string    `bson:"client_ip"`
	What     string    `bson:"what"`
}

// LastAccess returns the CPF's latest recorded access, or nil.
func (s *Store) LastAccess(ctx context.Context, cpf string) (*Access, error) {
	d, err := s.Subject(ctx, cpf)
	if err != nil {
		return nil, err
	}
	return d.LastAccess, nil
}

// Subject reads a profile with its last access.
func (s *Store) Subject(ctx context.Context, cpf string) (SubjectData, error) {
	var doc struct {
		domain.Profile `bson:",inline"`
		// LastAccess on the profile predates the last_access collection.
		LastAccess *accessDoc `bson:"last_access"`
	}
	var out SubjectData
	err := s.profiles.FindOne(ctx, bson.M{"_id": cpf}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return out, nil
	}
	if err != nil {
		return out, unavailable(err)
	}
	var ad struct {
		LastAccess *accessDoc `bson:"last_access"`
	}
	err = s.accesses.FindOne(ctx, bson.D{{Key: "_id", Value: cpf}}).Decode(&ad)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return out, unavailable(err)
	}
	if a := ad.LastAccess; a != nil && (doc.LastAccess == nil || a.At.After(doc.LastAccess.At)) {
		doc.LastAccess = a
	}
	out.Holds = true
	if doc.BirthDate != "" {
		out.Data = append(out.Data, "birth date (age)")
	}
	if doc.Address != (domain.Address{}) {
		out.Data = append(out.Data, "address")
	}
	out.Data = append(out.Data, fmt.Sprintf("assets: %d", len(doc.Assets)), fmt.Sprintf("income sources: %d", len(doc.IncomeSources)))
	if doc.DebtSummary != nil {
		out.Data = append(out.Data, "debt summary from Base A (open count and amount)")
	}
	out.Data = append(out.Data, "credit score (computed on request from the above)")
	if a := doc.LastAccess; a != nil {
		out.LastAccess = &Access{Who: a.Who, IP: a.ClientIP, What: a.What, At: a.At.UTC()}
	}
	return out, nil
}
