package domain

import (
	"encoding/json"
	"sync"
	"sync/atomic"
)

// payloadCache holds an event's data decoded into its type's payload struct.
// It is shared by every copy of the event, so that the folds one event passes
// through (the anomaly, its agent, the read models, the effects) decode its
// data once between them instead of once each.
type payloadCache struct {
	decode DataDecoder
	typ    string
	data   json.RawMessage // what was decoded: the cache stands for this only

	// The first reader decodes under mu and sets done; later readers see done
	// and read v and err without locking. (A sync.Once would do the same but
	// costs a closure allocation at every read, and reads are several per
	// event on a replay.)
	done atomic.Bool
	mu   sync.Mutex
	v    any // *T, the payload struct of typ
	err  error
}

// withPayloadCache gives e a cache of its data decoded with decode (nil:
// encoding/json). Events without one (built by hand, as tests do) decode their
// data with encoding/json at every use.
func (e Event) withPayloadCache(decode DataDecoder) Event {
	if decode == nil {
		decode = json.Unmarshal
	}
	e.payload = &payloadCache{decode: decode, typ: e.Type, data: e.Data}
	return e
}

// DataOf returns e's data decoded as T, the payload struct of e's type (such
// as AnomalyResolved), decoded once for all the copies of an event that a store
// returned. It returns an INTERNAL_ERROR *Error when the data does not decode
// as T.
func DataOf[T any](e Event) (T, error) { return payloadOf[T](e) }

// payloadOf is DataOf.
func payloadOf[T any](e Event) (T, error) {
	p, err := payloadPtr[T](e)
	if err != nil {
		var zero T
		return zero, err
	}
	return *p, nil
}

// payloadPtr is payloadOf without the copy: the struct it points to is shared
// by every reader of the event, and must not be changed.
func payloadPtr[T any](e Event) (*T, error) {
	c := e.payload
	if c == nil || c.typ != e.Type || !sameBytes(c.data, e.Data) {
		return decodeFresh[T](e)
	}
	if !c.done.Load() {
		c.mu.Lock()
		if !c.done.Load() {
			v := new(T)
			c.v, c.err = v, decodeWith(c.decode, e, v)
			c.done.Store(true)
		}
		c.mu.Unlock()
	}
	if c.err != nil {
		return nil, c.err
	}
	if p, ok := c.v.(*T); ok {
		return p, nil
	}
	return decodeFresh[T](e) // read as another payload type before
}

// decodeFresh decodes e's data as T without the cache, with encoding/json.
func decodeFresh[T any](e Event) (*T, error) {
	v := new(T)
	if err := decodeWith(json.Unmarshal, e, v); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeWith decodes e's data into v with decode. It returns an
// INTERNAL_ERROR *Error when the data does not decode.
func decodeWith(decode DataDecoder, e Event, v any) error {
	if err := decode(e.Data, v); err != nil {
		return Errorf(EINTERNAL, "decode %s %s: %v", e.Type, e.ID, err)
	}
	return nil
}

// sameBytes reports whether a and b are the same slice of the same memory,
// which is what an event's data is until something replaces it.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
