package esdbtest

import "fmt"

// Tamper rewrites the data of the event at revision of stream in place, as an
// attacker with access to the database's files would: no new event, no new
// position, nothing a client is told about. Tests use it to show that the hash
// chains catch such an edit. It returns an error when there is no such event.
func (d *Data) Tamper(stream string, revision uint64, edit func(data []byte) []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.streams[stream]
	if s == nil || revision >= uint64(len(s.events)) {
		return fmt.Errorf("esdbtest: no event %d in stream %s", revision, stream)
	}
	old := s.events[revision]
	edited := *old
	edited.data = edit(append([]byte(nil), old.data...))
	// Records are shared by reference between the stream index and the log.
	s.events[revision] = &edited
	for i, r := range d.log {
		if r == old {
			d.log[i] = &edited
		}
	}
	return nil
}
