package esdbtest

import (
	"math"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// batchSize is how many events a read or subscription takes from the log at
// a time (the lock is not held while sending).
const batchSize = 256

// Read implements Streams.Read: a read of a stream or of $all with a count,
// or (when the subscription option is set) a catch-up subscription.
//
// A plain read answers only events, or stream-not-found: the Go client
// panics on any other message in a read.
func (s *streamsService) Read(req *api.ReadReq, stream api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil {
		return status.Error(codes.InvalidArgument, "read options are required")
	}
	ro := readOptions{resolveLinks: o.GetResolveLinks()}
	if _, ok := o.GetUuidOption().GetContent().(*api.ReadReq_Options_UUIDOption_String_); ok {
		ro.uuidAsString = true
	}
	backwards := o.GetReadDirection() == api.ReadReq_Options_Backwards
	f, err := newFilter(o.GetFilter())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if o.GetStream() != nil && f != nil {
		return status.Error(codes.InvalidArgument, "filters apply to $all only")
	}

	if o.GetSubscription() != nil {
		if backwards {
			return status.Error(codes.InvalidArgument, "subscriptions read forwards only")
		}
		if so := o.GetStream(); so != nil {
			return s.subscribeStream(stream, so, ro)
		}
		if ao := o.GetAll(); ao != nil {
			return s.subscribeAll(stream, ao, f, o.GetFilter(), ro)
		}
		return status.Error(codes.InvalidArgument, "stream or $all option is required")
	}
	if so := o.GetStream(); so != nil {
		return s.readStream(stream, so, backwards, o.GetCount(), ro)
	}
	if ao := o.GetAll(); ao != nil {
		return s.readAll(stream, ao, backwards, o.GetCount(), f, ro)
	}
	return status.Error(codes.InvalidArgument, "stream or $all option is required")
}

// readStream sends up to count events of one stream, or stream-not-found
// when the stream has no events.
func (s *streamsService) readStream(stream api.Streams_ReadServer, so *api.ReadReq_Options_StreamOptions, backwards bool, count uint64, ro readOptions) error {
	name := string(so.GetStreamIdentifier().GetStreamName())
	var from uint64
	switch v := so.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Revision:
		from = v.Revision
	case *api.ReadReq_Options_StreamOptions_End:
		from = math.MaxUint64
	}
	events, exists := s.data.streamEvents(name, from, backwards, count)
	if !exists {
		return stream.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
		}}})
	}
	for _, r := range events {
		if err := stream.Send(s.data.eventResp(r, ro)); err != nil {
			return err
		}
	}
	return nil
}

// readAll sends up to count events of $all that pass the filter: forwards
// from a position (inclusive), or backwards from before a position.
func (s *streamsService) readAll(stream api.Streams_ReadServer, ao *api.ReadReq_Options_AllOptions, backwards bool, count uint64, f *filter, ro readOptions) error {
	var sent uint64
	send := func(r *record) (bool, error) {
		if !f.match(r) {
			return false, nil
		}
		if err := stream.Send(s.data.eventResp(r, ro)); err != nil {
			return true, err
		}
		sent++
		return sent >= count, nil
	}
	if count == 0 {
		return nil
	}

	if backwards {
		hi := s.data.logLen() // events before index hi
		switch v := ao.GetAllOption().(type) {
		case *api.ReadReq_Options_AllOptions_Start:
			hi = 0
		case *api.ReadReq_Options_AllOptions_Position:
			hi = s.data.logIndex(v.Position.GetCommitPosition(), true)
		}
		for i := hi - 1; i >= 0; i-- {
			if done, err := send(s.data.logAt(i)); done || err != nil {
				return err
			}
		}
		return nil
	}

	var next int
	switch v := ao.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_End:
		return nil
	case *api.ReadReq_Options_AllOptions_Position:
		next = s.data.logIndex(v.Position.GetCommitPosition(), true)
	}
	for {
		batch, _ := s.data.logTail(next, batchSize)
		if len(batch) == 0 {
			return nil
		}
		next += len(batch)
		for _, r := range batch {
			if done, err := send(r); done || err != nil {
				return err
			}
		}
	}
}
