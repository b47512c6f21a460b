package core

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// delayedPrefix marks EMQX-style delayed publishing:
// "$delayed/{seconds}/{topic}" publishes to {topic} after {seconds}.
const delayedPrefix = "$delayed/"

// maxDelay is EMQX's cap on a delay, kept for compatibility.
const maxDelay = 42949670 * time.Second

// delay schedules msg, whose topic is "$delayed/{seconds}/{topic}", for
// publication to {topic}. The real topic is validated and authorized now,
// so the publisher learns of a refusal while it can still be told.
func (b *Broker) delay(msg *Message, info *ClientInfo, w *writes) error {
	secStr, real, ok := strings.Cut(msg.Topic[len(delayedPrefix):], "/")
	secs, err := strconv.ParseUint(secStr, 10, 32)
	if !ok || err != nil || time.Duration(secs)*time.Second > maxDelay {
		return fmt.Errorf("%w: %q is not $delayed/{seconds}/{topic}", ErrInvalidTopic, msg.Topic)
	}
	if strings.HasPrefix(real, delayedPrefix) {
		return fmt.Errorf("%w: nested $delayed", ErrInvalidTopic)
	}
	if err := b.CheckTopicName(real); err != nil {
		return err
	}
	if info != nil && !b.authz.Authorize(info, Access{Action: ActionPublish, Topic: real, QoS: msg.QoS, Retain: msg.Retain}) {
		return ErrNotAuthorized
	}
	if !reserve(&b.stats.DelayedPending, b.cfg.MaxDelayed) {
		return fmt.Errorf("%w: %d delayed messages pending", ErrQuotaExceeded, b.cfg.MaxDelayed)
	}
	m := *msg
	m.Topic = real
	m.Arrived = 0 // it is published when due: no older than a subscription then
	d := time.Duration(secs) * time.Second
	id := b.storeDelayed(w, &m, time.Now().Add(d))
	b.scheduleDelayed(&m, id, d)
	return nil
}

// scheduleDelayed publishes m after d, removing its store record (id) in
// the same batch.
func (b *Broker) scheduleDelayed(m *Message, id uint64, d time.Duration) {
	time.AfterFunc(d, func() {
		b.stats.DelayedPending.Add(-1)
		if b.closing.Load() {
			return // still in the store: published after the restart
		}
		w := b.newWrites()
		if w != nil {
			w.b.DeleteDelayed(id)
		}
		if err := b.route1(m, nil, nil, w); err != nil {
			b.log.Debug("delayed publish failed", zap.Error(err))
		}
		b.commit(w, false)
	})
}
