package core

// queued is a message waiting in a session for its turn in the inflight
// window (or for the client to come back).
type queued struct {
	msg    *Message
	qos    byte
	retain bool
	ids    []uint32
	filter string
	group  *sharedGroup // the shared group that chose this session, if any
	seq    uint64       // the record's sequence number in a persistent session, 0 if not stored
	tk     *ticket      // the publication that put the record
}

// deque is a growable ring buffer of queued messages; it avoids the
// memory churn of re-slicing a plain slice as messages come and go.
type deque struct {
	buf  []queued
	head int
	n    int
}

func (d *deque) len() int { return d.n }

func (d *deque) pushBack(q queued) {
	if d.n == len(d.buf) {
		d.grow()
	}
	d.buf[(d.head+d.n)%len(d.buf)] = q
	d.n++
}

func (d *deque) front() *queued { return &d.buf[d.head] }

// at returns the i-th queued message from the front.
func (d *deque) at(i int) *queued { return &d.buf[(d.head+i)%len(d.buf)] }

func (d *deque) popFront() queued {
	q := d.buf[d.head]
	d.buf[d.head] = queued{} // let the message be collected
	d.head = (d.head + 1) % len(d.buf)
	d.n--
	if d.n == 0 {
		d.head = 0
		if len(d.buf) > 1024 {
			d.buf = nil // give back memory after a burst
		}
	}
	return q
}

// popBack removes and returns the newest queued message.
func (d *deque) popBack() queued {
	i := (d.head + d.n - 1) % len(d.buf)
	q := d.buf[i]
	d.buf[i] = queued{}
	d.n--
	if d.n == 0 {
		d.head = 0
	}
	return q
}

// pushFrontAll puts qs, in their order, ahead of everything queued.
func (d *deque) pushFrontAll(qs []queued) {
	for len(d.buf)-d.n < len(qs) {
		d.grow()
	}
	for i := len(qs) - 1; i >= 0; i-- {
		d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
		d.buf[d.head] = qs[i]
		d.n++
	}
}

func (d *deque) grow() {
	size := len(d.buf) * 2
	if size == 0 {
		size = 16
	}
	nb := make([]queued, size)
	for i := 0; i < d.n; i++ {
		nb[i] = d.buf[(d.head+i)%len(d.buf)]
	}
	d.buf = nb
	d.head = 0
}

func (d *deque) clear() { *d = deque{} }
