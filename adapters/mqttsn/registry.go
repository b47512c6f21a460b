package mqttsn

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
	if _, ok := r.byID[id]; ok {
		r.known[id] = true
	}
}

// forget marks an id as unknown to the client (it answered PUBACK with
// "invalid topic ID"), so the next PUBLISH on it is preceded by REGISTER.
func (r *registry) forget(id uint16) { delete(r.known, id) }
