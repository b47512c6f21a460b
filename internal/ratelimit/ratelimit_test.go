package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

const sec = int64(time.Second)

func TestBucketReserveIsTheRate(t *testing.T) {
	b := NewBucket(10, 5, 0)
	now := int64(0)
	// The burst passes at once, then each message costs a tenth of a
	// second: reserving 25 more must ask for 2.5 s of waiting in all.
	var waited time.Duration
	for i := 0; i < 30; i++ {
		d := b.Reserve(now, 1)
		if i < 5 && d != 0 {
			t.Fatalf("message %d of the burst waits %v", i, d)
		}
		waited += d
		now += int64(d) // the caller waits it out
	}
	if want := 2500 * time.Millisecond; waited < want-time.Millisecond || waited > want+time.Millisecond {
		t.Fatalf("waited %v for 25 messages over the burst at 10/s, want %v", waited, want)
	}
}

func TestBucketAllow(t *testing.T) {
	b := NewBucket(2, 2, 0)
	for i := 0; i < 2; i++ {
		if ok, _ := b.Allow(0, 1); !ok {
			t.Fatal("burst refused")
		}
	}
	ok, wait := b.Allow(0, 1)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("over the burst: ok %v, wait %v; want refusal for 500ms", ok, wait)
	}
	if ok, _ := b.Allow(sec/2, 1); !ok {
		t.Fatal("refused after the refill time")
	}
	// A unit bigger than the burst passes when the bucket is full.
	big := NewBucket(100, 10, 0)
	if ok, _ := big.Allow(0, 50); !ok {
		t.Fatal("a unit larger than the burst never passes")
	}
	if ok, wait := big.Allow(0, 50); ok || wait <= 0 {
		t.Fatalf("second large unit in debt: ok %v wait %v", ok, wait)
	}
}

func TestOffBucket(t *testing.T) {
	var b Bucket
	if d := b.Reserve(0, 1e9); d != 0 {
		t.Fatal("the zero bucket limits")
	}
	if NewClient(ClientConfig{}, 0) != nil {
		t.Fatal("a client without rates has buckets")
	}
	if NewKeyed[string](0, 1, 10) != nil || NewShared(0, 1) != nil {
		t.Fatal("a zero rate is not off")
	}
}

func TestClientBytes(t *testing.T) {
	c := NewClient(ClientConfig{BytesRate: 1000, BytesBurst: 1000}, 0)
	if d := c.Reserve(0, 1000); d != 0 {
		t.Fatalf("burst waits %v", d)
	}
	if d := c.Reserve(0, 500); d != 500*time.Millisecond {
		t.Fatalf("500 bytes over at 1000 B/s wait %v", d)
	}
	u := NewClient(ClientConfig{MsgRate: 1, MsgBurst: 1, BytesRate: 1e6, BytesBurst: 1e6}, 0)
	if ok, _ := u.Allow(0, 10); !ok {
		t.Fatal("first refused")
	}
	if ok, wait := u.Allow(0, 10); ok || wait != time.Second {
		t.Fatalf("second: %v %v", ok, wait)
	}
	// A refused message takes nothing from the other bucket.
	if u.bytes.tokens != 1e6-10 {
		t.Fatalf("refusal took bytes: %v", u.bytes.tokens)
	}
}

func TestTableBoundedAndForgets(t *testing.T) {
	tab := NewTable[int, int](100, time.Second, 0)
	for i := 0; i < 10000; i++ {
		v := i
		tab.Put(i, &v, 0)
		if tab.Len() > 100 {
			t.Fatalf("%d entries, bound 100", tab.Len())
		}
	}
	v := 1
	tab.Put(-1, &v, 0)
	if tab.Get(-1, sec/2) == nil {
		t.Fatal("fresh entry lost")
	}
	if tab.Get(-1, sec+sec/2) == nil {
		t.Fatal("entry touched within the period lost")
	}
	if tab.Get(-1, 4*sec) != nil {
		t.Fatal("entry idle for two periods kept")
	}
}

func TestKeyed(t *testing.T) {
	k := NewKeyed[string](1, 2, 1000)
	now := Now()
	for i := 0; i < 2; i++ {
		if ok, _ := k.Allow("a", now); !ok {
			t.Fatal("burst refused")
		}
	}
	if ok, _ := k.Allow("a", now); ok {
		t.Fatal("third within a second allowed")
	}
	if ok, _ := k.Allow("b", now); !ok {
		t.Fatal("another key limited by the first")
	}
}

func TestAddrKeyAndParse(t *testing.T) {
	cases := map[string]string{
		"127.0.0.2:1883":           "127.0.0.2",
		"[::ffff:10.0.0.1]:5683":   "10.0.0.1",
		"10.1.2.3":                 "10.1.2.3",
		"[2001:db8:1:2:3:4:5:6]:1": "2001:db8:1:2::",
		"10.0.0.9:1884/0a0b":       "10.0.0.9",
	}
	for in, want := range cases {
		a, ok := ParseAddr(in)
		if !ok {
			t.Fatalf("%q: no address", in)
		}
		if got := AddrKey(a).String(); got != want {
			t.Errorf("%q: key %s, want %s", in, got, want)
		}
	}
	if _, ok := ParseAddr("pipe"); ok {
		t.Error("pipe parsed as an address")
	}
	if AddrKey(netip.Addr{}).IsValid() {
		t.Error("zero address valid")
	}
}

// The reader's check per message: one nil check when no limit is set,
// a few float operations when one is. Neither allocates.
func BenchmarkClientOff(b *testing.B) { benchClient(b, ClientConfig{}) }

func BenchmarkClientOn(b *testing.B) {
	benchClient(b, ClientConfig{MsgRate: 1e12, MsgBurst: 1000, BytesRate: 1e15, BytesBurst: 1 << 20})
}

func benchClient(b *testing.B, cfg ClientConfig) {
	c := NewClient(cfg, Now())
	b.ReportAllocs()
	var d time.Duration
	for i := 0; i < b.N; i++ {
		if c != nil {
			d += c.Reserve(Now(), 100)
		}
	}
	_ = d
}

func BenchmarkKeyedAllow(b *testing.B) {
	k := NewKeyed[netip.Addr](1e9, 1e9, 65536)
	a := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		k.Allow(a, Now())
	}
}
