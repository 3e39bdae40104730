package esdbtest

import (
	"errors"
	"io"
	"math"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Append implements Streams.Append: a first message with the options (stream,
// expected revision), then one message per event. A wrong expected revision
// is an ordinary response (WrongExpectedVersion), not a gRPC error.
func (s *streamsService) Append(stream api.Streams_AppendServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "first append message must carry the options")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return status.Error(codes.InvalidArgument, "stream identifier is required")
	}
	var kind expectedKind
	var expected uint64
	switch v := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Any:
		kind = expectAny
	case *api.AppendReq_Options_NoStream:
		kind = expectNoStream
	case *api.AppendReq_Options_StreamExists:
		kind = expectStreamExists
	case *api.AppendReq_Options_Revision:
		kind, expected = expectRevision, v.Revision
	default:
		return status.Error(codes.InvalidArgument, "expected stream revision is required")
	}

	var events []proposed
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		ev, err := toProposed(msg.GetProposedMessage())
		if err != nil {
			return err
		}
		events = append(events, ev)
	}

	out := s.data.append(name, kind, expected, events)
	if out.ok {
		return stream.SendAndClose(&api.AppendResp{Result: &api.AppendResp_Success_{Success: successResp(out)}})
	}
	return stream.SendAndClose(&api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{
		WrongExpectedVersion: wrongExpectedVersion(kind, expected, out.current),
	}})
}

// toProposed checks and converts one proposed event; like the server, it
// requires the "type" and "content-type" metadata and keeps only whether the
// content type is JSON.
func toProposed(m *api.AppendReq_ProposedMessage) (proposed, error) {
	if m == nil {
		return proposed{}, status.Error(codes.InvalidArgument, "append messages after the first must be proposed messages")
	}
	id, err := uuidFromProto(m.GetId())
	if err != nil {
		return proposed{}, status.Errorf(codes.InvalidArgument, "event id: %v", err)
	}
	eventType, ok := m.GetMetadata()[metaType]
	if !ok {
		return proposed{}, status.Errorf(codes.InvalidArgument, "required metadata property %q is missing", metaType)
	}
	contentType, ok := m.GetMetadata()[metaContentType]
	if !ok {
		return proposed{}, status.Errorf(codes.InvalidArgument, "required metadata property %q is missing", metaContentType)
	}
	return proposed{
		id:        id,
		eventType: eventType,
		isJSON:    contentType == contentJSON,
		userMeta:  m.GetCustomMetadata(),
		data:      m.GetData(),
	}, nil
}

// successResp builds the success answer of an append.
func successResp(out appendOutcome) *api.AppendResp_Success {
	r := &api.AppendResp_Success{}
	if out.current < 0 {
		r.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
	} else {
		r.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(out.current)}
	}
	if out.hasPosition {
		r.PositionOption = &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
			CommitPosition:  out.position,
			PreparePosition: out.position,
		}}
	} else {
		r.PositionOption = &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	}
	return r
}

// wrongExpectedVersion builds the WrongExpectedVersion answer the way the
// server does: both the current fields and the 20.6.0 ones.
func wrongExpectedVersion(kind expectedKind, expected uint64, current int64) *api.AppendResp_WrongExpectedVersion {
	w := &api.AppendResp_WrongExpectedVersion{}
	switch kind {
	case expectAny:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: &shared.Empty{}}
	case expectStreamExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: &shared.Empty{}}
	case expectNoStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: math.MaxUint64}
	case expectRevision:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: expected}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: expected}
	}
	if current < 0 {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: &shared.Empty{}}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(current)}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(current)}
	}
	return w
}
