package mqttsn

import (
	"encoding/binary"
	"errors"
	"slices"
)

// predefined is the gateway-wide table of predefined topic ids; it is
// built once at Start and read concurrently without locks.
type predefined struct {
	byID   map[uint16]string
	byName map[string]uint16
}

func newPredefined(list []PredefinedTopic) *predefined {
	p := &predefined{byID: make(map[uint16]string, len(list)), byName: make(map[string]uint16, len(list))}
	for _, t := range list {
		p.byID[t.ID] = t.Topic
		p.byName[t.Topic] = t.ID
	}
	return p
}

// registry is one client's normal topic ids (§6.9, §6.10). The gateway
// assigns every id, whether the client asked with REGISTER, learnt it in
// a SUBACK, or was told with a gateway REGISTER, so one table serves both
// directions. known marks ids the client has acknowledged; a PUBLISH to
// the client may use only those. A registry belongs to a persistent
// session and outlives the connection with it.
type registry struct {
	byID   map[uint16]string
	byName map[string]uint16
	known  map[uint16]bool
	next   uint16
	max    int
	pre    *predefined
	// dirty: changed since the last save (persistent sessions keep it in
	// the store, see vconn.saveRegistry).
	dirty bool
}

func newRegistry(max int, pre *predefined) *registry {
	return &registry{byID: make(map[uint16]string), byName: make(map[string]uint16),
		known: make(map[uint16]bool), max: max, pre: pre}
}

// assign returns the id of name, allocating one if needed; false when the
// registry is full. Ids that are also predefined are skipped so a client
// that confuses the two id types still gets distinct topics.
func (r *registry) assign(name string) (uint16, bool) {
	if id, ok := r.byName[name]; ok {
		return id, true
	}
	if len(r.byID) >= r.max {
		return 0, false
	}
	for {
		r.next++
		if r.next == 0 || r.next == 0xFFFF { // 0x0000 and 0xFFFF are reserved (§5.3.11)
			r.next = 1
		}
		if _, used := r.byID[r.next]; used {
			continue
		}
		if _, pre := r.pre.byID[r.next]; pre {
			continue
		}
		break
	}
	r.byID[r.next] = name
	r.byName[name] = r.next
	r.dirty = true
	return r.next, true
}

// name returns the topic name of a normal topic id.
func (r *registry) name(id uint16) (string, bool) {
	n, ok := r.byID[id]
	return n, ok
}

// knownID returns the id of name if the client knows it.
func (r *registry) knownID(name string) (uint16, bool) {
	id, ok := r.byName[name]
	if !ok || !r.known[id] {
		return 0, false
	}
	return id, true
}

func (r *registry) markKnown(id uint16) {
	if _, ok := r.byID[id]; ok && !r.known[id] {
		r.known[id] = true
		r.dirty = true
	}
}

// forget marks an id as unknown to the client (it answered PUBACK with
// "invalid topic ID"), so the next PUBLISH on it is preceded by REGISTER.
func (r *registry) forget(id uint16) {
	if r.known[id] {
		delete(r.known, id)
		r.dirty = true
	}
}

// registryVersion is the first byte of an encoded registry.
const registryVersion = 1

// encode returns the registry as stored for a persistent session:
// version, uvarint next, then per id (ascending) uint16 id, a flags byte
// (1 = known to the client), uvarint length and the topic name.
// Predefined ids are gateway configuration and not part of it.
func (r *registry) encode() []byte {
	ids := make([]uint16, 0, len(r.byID))
	size := 4
	for id, n := range r.byID {
		ids = append(ids, id)
		size += 5 + len(n)
	}
	slices.Sort(ids)
	b := make([]byte, 0, size)
	b = append(b, registryVersion)
	b = binary.AppendUvarint(b, uint64(r.next))
	for _, id := range ids {
		var flags byte
		if r.known[id] {
			flags = 1
		}
		n := r.byID[id]
		b = binary.BigEndian.AppendUint16(b, id)
		b = append(b, flags)
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
	}
	return b
}

// decodeRegistry rebuilds a registry saved by encode; ids beyond max or
// now predefined (the configuration changed) are left out.
func decodeRegistry(b []byte, max int, pre *predefined) (*registry, error) {
	r := newRegistry(max, pre)
	if len(b) == 0 || b[0] != registryVersion {
		return nil, errors.New("mqttsn: unknown registry encoding")
	}
	b = b[1:]
	next, n := binary.Uvarint(b)
	if n <= 0 || next > 0xFFFF {
		return nil, errors.New("mqttsn: corrupt registry")
	}
	r.next, b = uint16(next), b[n:]
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, errors.New("mqttsn: corrupt registry")
		}
		id, flags := binary.BigEndian.Uint16(b), b[2]
		l, n := binary.Uvarint(b[3:])
		if n <= 0 || uint64(len(b)-3-n) < l {
			return nil, errors.New("mqttsn: corrupt registry")
		}
		name := string(b[3+n : 3+n+int(l)])
		b = b[3+n+int(l):]
		if _, isPre := pre.byID[id]; isPre || len(r.byID) >= max {
			continue
		}
		if _, dup := r.byName[name]; dup || id == 0 || id == 0xFFFF {
			continue
		}
		r.byID[id], r.byName[name] = name, id
		if flags&1 != 0 {
			r.known[id] = true
		}
	}
	return r, nil
}
