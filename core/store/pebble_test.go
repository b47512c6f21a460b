package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
)

var bg = context.Background()

func openTest(t testing.TB, dir, fsync string, window time.Duration) *pebbleStore {
	t.Helper()
	s, err := openPebble(Config{Engine: EnginePebble, Dir: dir, Fsync: fsync, BatchWindow: window}, zapNop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func qos1(client string, seq uint64) *SessionMessage {
	m := Message{Topic: "sensors/" + client + "/temp", Payload: []byte("21.5 degrees celsius, humidity 40 %, battery ok"), QoS: 1,
		Created: time.Now()}
	return &SessionMessage{ClientID: client, Seq: seq, QoS: 1, Filter: "sensors/#", Msg: &m}
}

func TestLockSameProcess(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, FsyncBatch, time.Millisecond)
	_, err := Open(Config{Engine: EnginePebble, Dir: dir, Fsync: FsyncAlways}, nil)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", os.Getpid())) {
		t.Fatalf("second open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, FsyncBatch, time.Millisecond) // released by Close
	s.Close()
}

// helper runs the test binary again as a child that executes mode.
func helper(t *testing.T, mode, dir string, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "IOTGW_STORE_HELPER="+mode, "IOTGW_STORE_DIR="+dir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// A pipe we keep open: the "lock" child holds the store until its
	// stdin ends. With no stdin (/dev/null) it read EOF at once, closed
	// the store and exited, racing the parent's Open (a flaky test).
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = in.Close() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("helper did not start: %q %v", sc.Text(), sc.Err())
	}
	return cmd, sc
}

// TestHelperProcess is the child side of the multi-process tests.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("IOTGW_STORE_HELPER")
	if mode == "" {
		t.Skip("only run as a child process")
	}
	dir := os.Getenv("IOTGW_STORE_DIR")
	fsync := os.Getenv("IOTGW_STORE_FSYNC")
	if fsync == "" {
		fsync = FsyncAlways
	}
	s, err := openPebble(Config{Engine: EnginePebble, Dir: dir, Fsync: fsync, BatchWindow: time.Millisecond}, zapNop())
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	switch mode {
	case "lock":
		_, _ = io.Copy(io.Discard, os.Stdin) // hold the lock until killed
	case "crash":
		// Writers commit messages durably and delete every other one,
		// printing each acknowledged operation; the parent kills us.
		var mu sync.Mutex
		w := bufio.NewWriter(os.Stdout)
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := fmt.Sprintf("c%d", i)
				var b Batch
				for seq := uint64(1); ; seq++ {
					b.Reset()
					b.PutMessage(qos1(client, seq))
					del := seq%2 == 0
					if del {
						b.DeleteMessage(client, seq-1)
					}
					if err := s.Commit(bg, &b, true); err != nil {
						fmt.Fprintln(os.Stderr, "commit:", err)
						os.Exit(3)
					}
					mu.Lock()
					fmt.Fprintf(w, "put %s %d\n", client, seq)
					if del {
						fmt.Fprintf(w, "del %s %d\n", client, seq-1)
					}
					w.Flush()
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	os.Exit(0)
}

func TestLockOtherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := helper(t, "lock", dir)
	_, err := Open(Config{Engine: EnginePebble, Dir: dir, Fsync: FsyncAlways}, nil)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", cmd.Process.Pid)) {
		t.Fatalf("open while another process holds the store: %v", err)
	}
	// kill -9 leaves no stale lock behind.
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	s := openTest(t, dir, FsyncAlways, 0)
	s.Close()
}

// TestCrash kills a writing process with SIGKILL at a random point and
// checks that every acknowledged write survived: acknowledged puts are
// there unless their delete was acknowledged too, acknowledged deletes
// are gone. With fsync off the last writes may be lost, since Pebble
// hands its WAL buffer to the OS from a background goroutine; what
// survives must still be a prefix of each writer's commits, and each
// commit whole.
func TestCrash(t *testing.T) {
	for _, mode := range []string{FsyncAlways, FsyncBatch, FsyncOff} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			for round := range 2 {
				cmd, sc := helper(t, "crash", dir, "IOTGW_STORE_FSYNC="+mode)
				time.AfterFunc(time.Duration(150+50*round)*time.Millisecond, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
				acked, deleted := map[string]bool{}, map[string]bool{}
				for sc.Scan() {
					f := strings.Fields(sc.Text())
					if len(f) != 3 {
						t.Fatalf("helper said %q", sc.Text())
					}
					k := f[1] + "/" + f[2]
					if f[0] == "put" {
						acked[k] = true
					} else {
						deleted[k] = true
					}
				}
				_ = cmd.Wait()
				if len(acked) == 0 {
					t.Fatal("helper acknowledged nothing")
				}
				s := openTest(t, dir, mode, time.Millisecond)
				present := map[string]bool{}
				err := s.Load(bg, Handler{Message: func(m *SessionMessage) error {
					present[m.ClientID+"/"+strconv.FormatUint(m.Seq, 10)] = true
					return nil
				}}.Handle)
				if err != nil {
					t.Fatal(err)
				}
				if mode == FsyncOff {
					checkPrefix(t, acked, deleted, present)
				} else {
					checkDurable(t, acked, deleted, present)
				}
				t.Logf("round %d: %d puts, %d deletes acknowledged, %d messages present", round, len(acked), len(deleted), len(present))
				// Start the next round from a clean slate.
				var b Batch
				for k := range present {
					c, seq, _ := strings.Cut(k, "/")
					n, _ := strconv.ParseUint(seq, 10, 64)
					b.DeleteMessage(c, n)
				}
				if err := s.Commit(bg, &b, true); err != nil {
					t.Fatal(err)
				}
				s.Close()
			}
		})
	}
}

func TestCorruptTable(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, FsyncOff, 0)
	var b Batch
	for i := range 2000 {
		b.PutMessage(qos1("c", uint64(i)))
	}
	if err := s.Commit(bg, &b, true); err != nil {
		t.Fatal(err)
	}
	s.Close() // flushes into a table
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table written")
	}
	for _, name := range tables {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(data) / 4; i < len(data)/2; i += 97 {
			data[i] ^= 0x55
		}
		if err := os.WriteFile(name, data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open(Config{Engine: EnginePebble, Dir: dir, Fsync: FsyncOff}, nil)
	if err == nil {
		defer s2.Close()
		err = s2.Load(bg, func(Record) error { return nil })
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt table: %v, want ErrCorrupt", err)
	}
	t.Log(err)
}

func TestCorruptValue(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, FsyncAlways, 0)
	if err := s.db.Set(appendMessageKey(nil, "c", 7), []byte{valueVersion, 0xff}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	err := s.Load(bg, func(Record) error { return nil })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("garbage value: %v", err)
	}
	_ = s.db.Delete(appendMessageKey(nil, "c", 7), pebble.Sync)
	_ = s.db.Set([]byte{0x77, 1}, nil, pebble.Sync)
	if err := s.Load(bg, func(Record) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown key: %v", err)
	}
	s.Close()
}

func TestForeignDirectory(t *testing.T) {
	// A Pebble database of another program.
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{zapNop().Sugar()}})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Set([]byte("other"), []byte("data"), pebble.Sync)
	db.Close()
	if _, err := Open(Config{Engine: EnginePebble, Dir: dir, Fsync: FsyncOff}, nil); !errors.Is(err, ErrCorrupt) ||
		!strings.Contains(err.Error(), "format marker") {
		t.Fatalf("foreign database: %v", err)
	}
	// A store of a future format.
	dir = t.TempDir()
	s := openTest(t, dir, FsyncOff, 0)
	_ = s.db.Set(formatKey, []byte{formatVersion + 1}, pebble.Sync)
	s.Close()
	if _, err := Open(Config{Engine: EnginePebble, Dir: dir, Fsync: FsyncOff}, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("future format: %v", err)
	}
	// A file where the directory should be.
	file := filepath.Join(t.TempDir(), "f")
	_ = os.WriteFile(file, nil, 0o640)
	if _, err := Open(Config{Engine: EnginePebble, Dir: file, Fsync: FsyncOff}, nil); err == nil {
		t.Fatal("opened a file as a store")
	}
}

func TestCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s := openTest(t, dir, FsyncBatch, time.Millisecond)
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, lockFile)); err != nil {
		t.Fatal(err)
	}
}

func TestGroupCommit(t *testing.T) {
	s := openTest(t, t.TempDir(), FsyncAlways, 0)
	defer s.Close()
	churn(t, s, 8, 50)
	st := s.Stats()
	t.Logf("%+v", st)
	if st.Commits != 8*50*2 || st.Syncs == 0 || st.Syncs >= st.Commits {
		t.Fatalf("no grouping: %+v", st)
	}
}

// churn runs writers that each put and then delete n messages durably.
func churn(t testing.TB, s Store, writers, n int) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := "w" + strconv.Itoa(w)
			var b Batch
			for i := range n {
				b.Reset()
				b.PutMessage(qos1(client, uint64(i)))
				if err := s.Commit(bg, &b, true); err != nil {
					t.Error(err)
					return
				}
				b.Reset()
				b.DeleteMessage(client, uint64(i))
				if err := s.Commit(bg, &b, true); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestBatchWindow(t *testing.T) {
	// A long window, so that an fsync stall on a busy machine cannot be
	// mistaken for waiting out the window.
	const window = 200 * time.Millisecond
	s := openTest(t, t.TempDir(), FsyncBatch, window)
	defer s.Close()
	commitOne := func(seq uint64, durable bool) time.Duration {
		var b Batch
		b.PutMessage(qos1("c", seq))
		start := time.Now()
		if err := s.Commit(bg, &b, durable); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	quick := window * 3 / 4
	if d := commitOne(1, true); d >= quick {
		t.Errorf("first durable commit after a quiet period waited %v", d)
	}
	if d := commitOne(2, false); d >= quick {
		t.Errorf("non-durable commit waited %v", d)
	}
	if d := commitOne(3, true); d < quick {
		t.Errorf("durable commit within the window returned after %v", d)
	}
	time.Sleep(window)
	if d := commitOne(4, true); d >= quick {
		t.Errorf("durable commit after the window waited %v", d)
	}
	if st := s.Stats(); st.Syncs != 3 {
		t.Errorf("syncs %d, want 3", st.Syncs)
	}
	// While commits keep coming, at most one sync per window; their done
	// calls come in commit order.
	before := s.Stats().Syncs
	const pump = 2 * window
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	start := time.Now()
	for seq := uint64(100); time.Since(start) < pump; seq++ {
		b := new(Batch)
		b.PutMessage(qos1("c", seq))
		wg.Add(1)
		s.CommitAsync(b, true, func(err error) {
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, seq)
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	syncs := s.Stats().Syncs - before
	t.Logf("%d async commits, %d syncs in %v", len(order), syncs, time.Since(start))
	if limit := uint64(pump/window) + 2; syncs > limit {
		t.Errorf("%d syncs while pumping for %v, want at most %d", syncs, pump, limit)
	}
	for i := 1; i < len(order); i++ {
		if order[i] != order[i-1]+1 {
			t.Fatalf("done calls out of order at %d: %d after %d", i, order[i], order[i-1])
		}
	}
}

func TestFsyncOff(t *testing.T) {
	s := openTest(t, t.TempDir(), FsyncOff, 0)
	churn(t, s, 2, 20)
	if st := s.Stats(); st.Syncs != 0 {
		t.Fatalf("fsync off synced %d times while running", st.Syncs)
	}
	s.Close()
	if st := s.Stats(); st.Syncs != 1 {
		t.Fatalf("close synced %d times, want 1", st.Syncs)
	}
}

// Commits racing with Close either succeed or fail with ErrClosed; none
// hangs, and every one that succeeded is there after reopening.
func TestCloseWhileCommitting(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, FsyncBatch, time.Millisecond)
	var mu sync.Mutex
	ok := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(0); ; i++ {
				var b Batch
				seq := uint64(w)<<32 | i
				b.PutMessage(qos1("c", seq))
				err := s.Commit(bg, &b, i%2 == 0)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ok[seq] = true
				mu.Unlock()
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s = openTest(t, dir, FsyncBatch, time.Millisecond)
	defer s.Close()
	n := 0
	_ = s.Load(bg, Handler{Message: func(m *SessionMessage) error {
		if ok[m.Seq] {
			n++
		}
		return nil
	}}.Handle)
	if n != len(ok) || n == 0 {
		t.Fatalf("%d of %d committed messages found", n, len(ok))
	}
}

func splitKey(k string) (string, uint64) {
	c, seq, _ := strings.Cut(k, "/")
	n, _ := strconv.ParseUint(seq, 10, 64)
	return c, n
}

func key(c string, n uint64) string { return c + "/" + strconv.FormatUint(n, 10) }

// checkDurable: nothing acknowledged is lost.
func checkDurable(t *testing.T, acked, deleted, present map[string]bool) {
	t.Helper()
	for k := range acked {
		// An odd message may also be gone because the batch deleting it
		// (the next put) was written but killed before it was
		// acknowledged.
		c, n := splitKey(k)
		inFlightDelete := n%2 == 1 && !acked[key(c, n+1)]
		if !present[k] && !deleted[k] && !inFlightDelete {
			t.Errorf("acknowledged %s lost", k)
		}
	}
	for k := range deleted {
		if present[k] {
			t.Errorf("acknowledged delete of %s undone", k)
		}
	}
}

// checkPrefix: each writer's surviving commits are a prefix of its
// commits, and every commit (put n, delete n-1) is whole.
func checkPrefix(t *testing.T, acked, deleted, present map[string]bool) {
	t.Helper()
	last := map[string]uint64{} // highest surviving seq per writer
	for k := range present {
		c, n := splitKey(k)
		last[c] = max(last[c], n)
	}
	lost := 0
	for k := range acked {
		c, n := splitKey(k)
		if n > last[c] {
			lost++
			continue // a lost tail
		}
		// Commit n survived, so did everything before it: even messages
		// are never deleted, odd ones only by commit n+1.
		gone := n%2 == 1 && n+1 <= last[c]
		if present[k] == gone {
			t.Errorf("%s: present %v although commit %d survived", k, present[k], last[c])
		}
	}
	t.Logf("fsync off: %d acknowledged puts lost in the tail", lost)
}
