package core

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// delayedPrefix marks EMQX-style delayed publishing:
// "$delayed/{seconds}/{topic}" publishes to {topic} after {seconds}.
const delayedPrefix = "$delayed/"

// maxDelay is EMQX's cap on a delay, kept for compatibility.
const maxDelay = 42949670 * time.Second

// delay schedules msg, whose topic is "$delayed/{seconds}/{topic}", for
// publication to {topic}. The real topic is validated and authorized now,
// so the publisher learns of a refusal while it can still be told.
func (b *Broker) delay(msg *Message, info *ClientInfo) error {
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
	if info != nil && !b.authz.Authorize(info, ActionPublish, real) {
		return ErrNotAuthorized
	}
	if b.stats.DelayedPending.Add(1) > int64(b.cfg.MaxDelayed) {
		b.stats.DelayedPending.Add(-1)
		return fmt.Errorf("%w: %d delayed messages pending", ErrQuotaExceeded, b.cfg.MaxDelayed)
	}
	m := *msg
	m.Topic = real
	time.AfterFunc(time.Duration(secs)*time.Second, func() {
		b.stats.DelayedPending.Add(-1)
		if b.closing.Load() {
			return
		}
		if err := b.publish(&m, nil, nil); err != nil {
			b.log.Debug("delayed publish failed")
		}
	})
	return nil
}
