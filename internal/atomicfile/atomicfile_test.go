package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile_ReplacesWithTheModeAndLeavesNoTempFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "secret")
	for _, data := range []string{"first", "second"} {
		if err := WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v, mode %v; want 0600", err, info.Mode())
	}
	if got, _ := os.ReadFile(path); string(got) != "second" {
		t.Errorf("content %q, want the second write", got)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("%d entries beside the file, want none left over", len(entries)-1)
	}
}

func TestReplaceDir_FailureLeavesTheOldDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if err := ReplaceDir(dir, []File{{Path: "a/keep.txt", Mode: 0o644, Data: []byte("old")}}); err != nil {
		t.Fatal(err)
	}
	err := ReplaceDir(dir, []File{{Path: "new.txt", Mode: 0o644, Data: []byte("new")}, {Path: "../escape", Mode: 0o644}})
	if err == nil {
		t.Fatal("a path outside the directory was accepted")
	}
	if got, err := os.ReadFile(filepath.Join(dir, "a", "keep.txt")); err != nil || string(got) != "old" {
		t.Errorf("the old directory after a failed replace: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "new.txt")); err == nil {
		t.Error("half of the failed replace is in place")
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Errorf("%d entries beside the directory, want no staging left", len(entries))
	}
}
