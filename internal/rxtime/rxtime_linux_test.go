//go:build linux

package rxtime

import (
	"encoding/binary"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestReceiveTime reads a datagram's kernel receive time off a real socket.
func TestReceiveTime(t *testing.T) {
	rc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw, err := rc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := Enable(raw); err != nil {
		t.Fatal(err)
	}
	sc, err := net.DialUDP("udp", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	before := time.Now().UnixNano()
	if _, err := sc.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 16), make([]byte, OOBSize)
	rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, oobn, _, _, err := rc.ReadMsgUDP(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixNano()
	if at := Parse(oob[:oobn]); at < before || at > after {
		t.Fatalf("receive time %d not within [%d, %d]", at, before, after)
	}
}

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, syscall.CmsgSpace(len(data)))
	if lenSize == 8 {
		binary.NativeEndian.PutUint64(b, uint64(syscall.CmsgLen(len(data))))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(syscall.CmsgLen(len(data))))
	}
	binary.NativeEndian.PutUint32(b[levelOff:], uint32(level))
	binary.NativeEndian.PutUint32(b[typeOff:], uint32(typ))
	copy(b[syscall.CmsgLen(0):], data)
	return b
}

func timespec(sec, nsec int64) []byte {
	b := make([]byte, tsSize)
	if secSize == 8 {
		binary.NativeEndian.PutUint64(b, uint64(sec))
		binary.NativeEndian.PutUint64(b[nsecOff:], uint64(nsec))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(sec))
		binary.NativeEndian.PutUint32(b[nsecOff:], uint32(nsec))
	}
	return b
}

func TestParse(t *testing.T) {
	ts := cmsg(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS, timespec(1700000000, 123456789))
	pktinfo := cmsg(syscall.IPPROTO_IP, syscall.IP_PKTINFO, make([]byte, 12))
	const want = 1700000000*1e9 + 123456789
	for _, c := range []struct {
		name string
		oob  []byte
		want int64
	}{
		{"alone", ts, want},
		{"after another", append(append([]byte(nil), pktinfo...), ts...), want},
		{"other only", pktinfo, 0},
		{"empty", nil, 0},
		{"truncated", ts[:len(ts)-4], 0},
		{"short header", ts[:4], 0},
		{"unaligned", append([]byte{0}, ts...)[1:], want},
	} {
		if got := Parse(c.oob); got != c.want {
			t.Errorf("%s: Parse = %d, want %d", c.name, got, c.want)
		}
	}
	both := append(append([]byte(nil), pktinfo...), ts...)
	if n := testing.AllocsPerRun(100, func() { Parse(both) }); n != 0 {
		t.Fatalf("Parse allocates %v times", n)
	}
}
