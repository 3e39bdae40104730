package app

import (
	"context"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

type commandIDKey struct{}

// WithCommandID gives the command run with ctx a caller-chosen id: its event gets
// that id, and a report its anomaly id derived from it. Run again with the same
// id — a client's retry after a crash lost the first answer — the command finds
// its own event in the stream and answers as it did instead of deciding anew.
func WithCommandID(ctx context.Context, id uuid.UUID) context.Context {
	return context.WithValue(ctx, commandIDKey{}, id)
}

func commandID(ctx context.Context) (uuid.UUID, bool) {
	id, ok := ctx.Value(commandIDKey{}).(uuid.UUID)
	return id, ok && id != uuid.Nil
}

// anomalyIDFor derives the id of the anomaly that the report with command id
// cmd opens.
func anomalyIDFor(cmd uuid.UUID) uuid.UUID { return uuid.NewSHA1(cmd, []byte("anomaly")) }

// ownEvent returns the prefix of recs up to the event with id cmd, and false
// when the stream has no such event.
func ownEvent(recs []eventstore.Recorded, cmd uuid.UUID) ([]eventstore.Recorded, bool) {
	for i, r := range recs {
		if r.ID == cmd {
			return recs[:i+1], true
		}
	}
	return nil, false
}

// replayed rebuilds the outcome of a command that already ran: the anomaly as it
// was right after the command's event.
func replayed(recs []eventstore.Recorded) (Result, error) {
	a, err := domain.LoadAnomaly(events(recs))
	if err != nil {
		return Result{}, err
	}
	return Result{Anomaly: a.State(), Position: recs[len(recs)-1].Position}, nil
}
