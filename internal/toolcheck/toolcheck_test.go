package toolcheck

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheck_EachToolRefusesABrokenFile: the check can fail, and says
// which tool refused which file.
func TestCheck_EachToolRefusesABrokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := Files{
		Compose:      write("compose.yml", "services:\n  web:\n    image: demo/app:1\n"),
		Project:      "demo",
		Nginx:        write("nginx.conf", "events {}\nhttp {\n  server {\n    listen 8443 ssl;\n    ssl_certificate     /etc/nowhere/cert.pem;\n    ssl_certificate_key /etc/nowhere/key.pem;\n  }\n}\n"),
		Prometheus:   write("prometheus.yml", "global:\n  scrape_interval: 15s\n"),
		Alertmanager: write("alertmanager.yml", "route:\n  receiver: \"null\"\nreceivers:\n- name: \"null\"\n"),
	}
	if err := Check(context.Background(), good); err != nil {
		t.Fatalf("well-formed files refused: %v", err)
	}
	for _, c := range []struct {
		name  string
		broke func(*Files)
		want  string
	}{
		{"compose", func(f *Files) { f.Compose = write("bad-compose.yml", "services:\n  web:\n    image: [1, 2]\n") }, "compose-go refuses"},
		{"nginx", func(f *Files) { f.Nginx = write("bad-nginx.conf", "events {}\nhttp {\n  server_name_nope x;\n}\n") }, "nginx -t refuses"},
		{"promtool", func(f *Files) { f.Prometheus = write("bad-prometheus.yml", "global:\n  scrape_interval: forever\n") }, "promtool check config"},
		{"amtool", func(f *Files) {
			f.Alertmanager = write("bad-alertmanager.yml", "route:\n  receiver: missing\nreceivers:\n- name: \"null\"\n")
		}, "amtool check-config"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := good
			c.broke(&f)
			err := Check(context.Background(), f)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("a broken file: %v, want %q", err, c.want)
			}
		})
	}
}
