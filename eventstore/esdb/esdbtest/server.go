// Package esdbtest is an in-memory EventStoreDB for tests: a gRPC server on a
// loopback port that speaks enough of the EventStoreDB protocol for the
// official Go client (github.com/EventStore/EventStore-Client-Go/v4) to
// append to streams, read streams and $all, and run catch-up subscriptions to
// a stream or to $all (with filters), over a connection string such as
// "esdb://127.0.0.1:PORT?tls=false" (see Server.URL).
//
// Everything else (deletes, persistent subscriptions, projections, users,
// batch appends, ...) answers gRPC Unimplemented. There is no TLS and no
// authentication.
package esdbtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	features "github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// ServerVersion is the EventStoreDB version the server claims to be.
const ServerVersion = "24.10.0"

// Server is a running in-memory EventStoreDB node.
type Server struct {
	addr     string
	data     *Data
	grpc     *grpc.Server
	id       uuid.UUID
	stopOnce sync.Once
	served   chan struct{} // closed when Serve returns
}

// Start starts a server on 127.0.0.1 with a free port and new, empty data. It
// returns once the server accepts connections.
func Start() (*Server, error) {
	return StartAt("127.0.0.1:0", nil)
}

// StartAt starts a server on addr (host:port; e.g. the address of a stopped
// server, to simulate a restart) sharing data (nil: new, empty data). It
// returns once the server accepts connections.
func StartAt(addr string, data *Data) (*Server, error) {
	if data == nil {
		data = NewData()
	}
	lis, err := listen(addr)
	if err != nil {
		return nil, fmt.Errorf("esdbtest: listen on %s: %w", addr, err)
	}
	s := &Server{
		addr:   lis.Addr().String(),
		data:   data,
		id:     uuid.New(),
		served: make(chan struct{}),
	}
	s.grpc = grpc.NewServer(
		// Stop waits for the handlers, so that nothing of this server runs
		// once Stop has returned.
		grpc.WaitForHandlers(true),
		// The client pings every 10 s, even without calls; the default policy
		// would answer with GOAWAY after a few pings.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             time.Second,
			PermitWithoutStream: true,
		}),
	)
	api.RegisterStreamsServer(s.grpc, &streamsService{data: data})
	features.RegisterServerFeaturesServer(s.grpc, featuresService{})
	gossip.RegisterGossipServer(s.grpc, gossipService{server: s})
	go func() {
		defer close(s.served)
		_ = s.grpc.Serve(lis)
	}()
	return s, nil
}

// listen listens on addr, retrying for a moment while the address is still in
// use (a server just stopped on it).
func listen(addr string) (net.Listener, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		lis, err := net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return lis, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr returns the server's address, host:port.
func (s *Server) Addr() string { return s.addr }

// URL returns the connection string of the server for the client:
// "esdb://" + Addr() + "?tls=false".
func (s *Server) URL() string { return "esdb://" + s.addr + "?tls=false" }

// Data returns the server's data, to start another server with the same
// events.
func (s *Server) Data() *Data { return s.data }

// Stop stops the server hard, like a crash: it closes the listener and every
// connection, so that open calls (reads, subscriptions, appends) fail on the
// client side. It returns once the server and all its handlers are done. The
// data stay as they are. Stop may be called more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.grpc.Stop()
		<-s.served
	})
}

// featuresService answers ServerFeatures.GetSupportedMethods, which the
// client calls on connect to learn the server version and features.
type featuresService struct {
	features.UnimplementedServerFeaturesServer
}

// GetSupportedMethods lists the methods the server implements. The client
// only derives feature flags (batch append, persistent subscriptions) from
// it; none of those is advertised.
func (featuresService) GetSupportedMethods(context.Context, *shared.Empty) (*features.SupportedMethods, error) {
	m := func(service, method string) *features.SupportedMethod {
		return &features.SupportedMethod{ServiceName: service, MethodName: method}
	}
	return &features.SupportedMethods{
		EventStoreServerVersion: ServerVersion,
		Methods: []*features.SupportedMethod{
			m("event_store.client.streams.streams", "read"),
			m("event_store.client.streams.streams", "append"),
			m("event_store.client.server_features.serverfeatures", "getsupportedmethods"),
			m("event_store.client.gossip.gossip", "read"),
		},
	}, nil
}

// gossipService answers Gossip.Read with a one-node cluster, the server
// itself as the leader. The client only calls it for cluster connection
// strings (esdb+discover://, several hosts).
type gossipService struct {
	gossip.UnimplementedGossipServer
	server *Server
}

// Read returns the cluster: this node, alive and leader.
func (g gossipService) Read(context.Context, *shared.Empty) (*gossip.ClusterInfo, error) {
	host, portText, err := net.SplitHostPort(g.server.addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portText, 10, 32)
	if err != nil {
		return nil, err
	}
	return &gossip.ClusterInfo{Members: []*gossip.MemberInfo{{
		InstanceId:   uuidToProto(g.server.id, false),
		TimeStamp:    time.Now().UnixNano() / 100,
		State:        gossip.MemberInfo_Leader,
		IsAlive:      true,
		HttpEndPoint: &gossip.EndPoint{Address: host, Port: uint32(port)},
	}}}, nil
}

// streamsService implements the Streams service: Read and Append.
type streamsService struct {
	api.UnimplementedStreamsServer
	data *Data
}
