package app

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/auth/passwd"
)

func TestPasswordFileConfigAndSys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.txt")
	h, err := passwd.Hash(passwd.KindSHA512, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("a:"+h+"\nb:"+h+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load([]byte("auth:\n  password_file: "+file+"\n  password_cache_ttl: 0\n"), []string{"IOTGW_AUTH_PASSWORD_FILE_RELOAD_INTERVAL=2s"})
	if err != nil {
		t.Fatal(err)
	}
	pc := cfg.PasswordFile
	if pc.File != file || pc.CacheTTL != 0 || pc.ReloadInterval != 2*time.Second {
		t.Fatalf("config %+v", pc)
	}
	if names, _ := cfg.chainNames(); len(names) != 1 || names[0] != "password_file" {
		t.Fatalf("chain %v", names)
	}
	b, err := passwd.New(pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := map[string]string{}
	sysPasswordFile(b)(func(topic, value string) { got[topic] = value })
	if got["$SYS/broker/auth/password_file/users"] != "2" || got["$SYS/broker/auth/password_file/reloads"] != "0" ||
		got["$SYS/broker/auth/password_file/last_error"] != "" {
		t.Errorf("$SYS %v", got)
	}
}
