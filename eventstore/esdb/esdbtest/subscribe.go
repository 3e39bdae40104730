package esdbtest

import (
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/status"
)

// defaultSearchWindow is the server's filter window when the request sets no
// maximum.
const defaultSearchWindow = 32

// caughtUp is the message a subscription sends once it has sent the events
// that were there when it started, before the live ones.
func caughtUp() *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}
}

// confirm sends the subscription confirmation, the first message of every
// subscription.
func confirm(stream api.Streams_ReadServer) error {
	return stream.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{
		Confirmation: &api.ReadResp_SubscriptionConfirmation{SubscriptionId: uuid.NewString()},
	}})
}

// subscribeStream runs a catch-up subscription to one stream: the events
// after the starting point (Start: all; End: none; revision r: from r+1),
// then "caught up", then each new event, until the call ends. A stream that
// does not exist yet is waited for.
func (s *streamsService) subscribeStream(stream api.Streams_ReadServer, so *api.ReadReq_Options_StreamOptions, ro readOptions) error {
	name := string(so.GetStreamIdentifier().GetStreamName())
	var next uint64
	switch v := so.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Revision:
		next = v.Revision + 1
	case *api.ReadReq_Options_StreamOptions_End:
		next = s.data.streamLen(name)
	}
	if err := confirm(stream); err != nil {
		return err
	}
	ctx := stream.Context()
	isCaughtUp := false
	for {
		batch, changed := s.data.streamTail(name, next, batchSize)
		for _, r := range batch {
			if err := stream.Send(s.data.eventResp(r, ro)); err != nil {
				return err
			}
			next++
		}
		if len(batch) > 0 {
			continue
		}
		if !isCaughtUp {
			isCaughtUp = true
			if err := stream.Send(caughtUp()); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// subscribeAll runs a catch-up subscription to $all: the events after the
// starting point (Start: all; End: none; a position: those after it) that
// pass the filter, then "caught up", then each new one, until the call ends.
// With a filter it also sends a checkpoint (the position of the last event
// looked at) every window*checkpointIntervalMultiplier events looked at, as
// the server does.
func (s *streamsService) subscribeAll(stream api.Streams_ReadServer, ao *api.ReadReq_Options_AllOptions, f *filter, fo *api.ReadReq_Options_FilterOptions, ro readOptions) error {
	var next int
	switch v := ao.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_End:
		next = s.data.logLen()
	case *api.ReadReq_Options_AllOptions_Position:
		next = s.data.logIndex(v.Position.GetCommitPosition(), false)
	}
	interval := 0
	if f != nil {
		window := int(fo.GetMax())
		if window <= 0 {
			window = defaultSearchWindow
		}
		interval = window * max(1, int(fo.GetCheckpointIntervalMultiplier()))
	}
	if err := confirm(stream); err != nil {
		return err
	}
	ctx := stream.Context()
	isCaughtUp := false
	scanned := 0
	for {
		batch, changed := s.data.logTail(next, batchSize)
		for _, r := range batch {
			next++
			if f.match(r) {
				if err := stream.Send(s.data.eventResp(r, ro)); err != nil {
					return err
				}
			}
			if interval == 0 {
				continue
			}
			if scanned++; scanned%interval == 0 {
				err := stream.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
					CommitPosition:  r.position,
					PreparePosition: r.position,
				}}})
				if err != nil {
					return err
				}
			}
		}
		if len(batch) > 0 {
			continue
		}
		if !isCaughtUp {
			isCaughtUp = true
			if err := stream.Send(caughtUp()); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}
